-- Payments of orders on events name no ticket (their order names its event).
ALTER TABLE payments ALTER COLUMN ticket_id DROP NOT NULL;
