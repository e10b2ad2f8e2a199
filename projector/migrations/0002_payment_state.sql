-- Payments keep the whole of the domain's payment state, so the projector reads a payment back
-- exactly as the write model folds it. Rows projected before this migration read as "no failure
-- reason, no refund due" until the next rebuild (`projector rebuild`).
ALTER TABLE payments
    ADD COLUMN failure_reason text,
    ADD COLUMN refund_due boolean NOT NULL DEFAULT false;
