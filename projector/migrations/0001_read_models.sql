-- Read models, created inside one generation's schema (the connection's search_path).
-- Readers never use these tables directly: they read the views in schema `read`, which point at
-- the live generation (see projector/src/schema.rs).

CREATE TABLE checkpoint (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    position  bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO checkpoint DEFAULT VALUES;

CREATE TABLE accounts (
    id            uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    registered_at timestamptz NOT NULL,
    position      bigint NOT NULL
);

CREATE TABLE revoked_sessions (
    session_id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE tickets (
    id               uuid PRIMARY KEY,
    seller_id        uuid NOT NULL,
    title            text NOT NULL,
    price_cents      bigint NOT NULL,
    currency         text NOT NULL,
    status           text NOT NULL,
    holder_order_id  uuid,
    version          integer NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    created_position bigint NOT NULL UNIQUE,
    position         bigint NOT NULL
);
-- Cursor pagination, newest first: by creation position, optionally per status or seller.
CREATE INDEX tickets_newest ON tickets (created_position DESC);
CREATE INDEX tickets_status_newest ON tickets (status, created_position DESC);
CREATE INDEX tickets_seller_newest ON tickets (seller_id, created_position DESC);

CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    ticket_id        uuid NOT NULL,
    buyer_id         uuid NOT NULL,
    seller_id        uuid NOT NULL,
    amount_cents     bigint NOT NULL,
    currency         text NOT NULL,
    status           text NOT NULL,
    cancel_reason    text,
    expires_at       timestamptz NOT NULL,
    payment_id       uuid,
    version          integer NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    created_position bigint NOT NULL UNIQUE,
    position         bigint NOT NULL
);
CREATE INDEX orders_buyer_newest ON orders (buyer_id, created_position DESC);
CREATE INDEX orders_ticket ON orders (ticket_id);

CREATE TABLE payments (
    id            uuid PRIMARY KEY,
    order_id      uuid NOT NULL,
    ticket_id     uuid NOT NULL,
    amount_cents  bigint NOT NULL,
    currency      text NOT NULL,
    status        text NOT NULL,
    provider_ref  text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    position      bigint NOT NULL
);
CREATE INDEX payments_order ON payments (order_id, created_at DESC);

CREATE TABLE ticket_history (
    ticket_id  uuid NOT NULL,
    position   bigint NOT NULL,
    event_type text NOT NULL,
    at         timestamptz NOT NULL,
    version    integer NOT NULL,
    PRIMARY KEY (ticket_id, position)
);

-- Events that could not be applied after retries: the projector went on without them.
CREATE TABLE parked_events (
    position  bigint PRIMARY KEY,
    subject   text NOT NULL,
    payload   bytea NOT NULL,
    error     text NOT NULL,
    attempts  integer NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now()
);
