-- Events (the domain's shows): an organiser's on-sale with ticket types and numbered seats, and
-- the orders on them. Event orders live in `orders` beside ticket orders (one `myOrders` list),
-- with `event_id` set and `ticket_id` null, and their items in `order_items`.

-- Orders placed together share one stream message: an order's place in the stream is its
-- message's sequence times 1024 plus its index in the message (a ticket order is index 0).
-- (In two steps: `created_position` is unique and checked row by row, so scaling in place would
-- collide, e.g. 5 × 1024 with an order already at 5120.)
UPDATE orders SET created_position = -created_position;
UPDATE orders SET created_position = -created_position * 1024;
ALTER TABLE orders
    ALTER COLUMN ticket_id DROP NOT NULL,
    ADD COLUMN event_id uuid;
CREATE INDEX orders_event ON orders (event_id) WHERE event_id IS NOT NULL;

CREATE TABLE events (
    id               uuid PRIMARY KEY,
    organizer_id     uuid NOT NULL,
    title            text NOT NULL,
    venue            text NOT NULL,
    starts_at        timestamptz NOT NULL,
    version          integer NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    created_position bigint NOT NULL UNIQUE,
    position         bigint NOT NULL
);
-- `events`: soonest first (upcoming ones); `myEvents`: newest first per organiser.
CREATE INDEX events_soonest ON events (starts_at, created_position);
CREATE INDEX events_organizer_newest ON events (organizer_id, created_position DESC);

CREATE TABLE ticket_types (
    id           uuid PRIMARY KEY,
    event_id     uuid NOT NULL,
    idx          integer NOT NULL,
    name         text NOT NULL,
    price_cents  bigint NOT NULL,
    capacity     integer NOT NULL,
    held         integer NOT NULL DEFAULT 0,
    sold         integer NOT NULL DEFAULT 0,
    UNIQUE (event_id, idx)
);

CREATE TABLE sections (
    event_id      uuid NOT NULL,
    idx           integer NOT NULL,
    name          text NOT NULL,
    price_cents   bigint NOT NULL,
    rows          integer NOT NULL,
    seats_per_row integer NOT NULL,
    available     integer NOT NULL,
    PRIMARY KEY (event_id, idx)
);

CREATE TABLE seats (
    event_id    uuid NOT NULL,
    section_idx integer NOT NULL,
    row         integer NOT NULL,
    number      integer NOT NULL,
    status      text NOT NULL,
    order_id    uuid,
    PRIMARY KEY (event_id, section_idx, row, number)
);
CREATE INDEX seats_order ON seats (order_id) WHERE order_id IS NOT NULL;

-- One line per ticket of an order: a ticket of a type, or a seat; with its price at the hold.
CREATE TABLE order_items (
    order_id       uuid NOT NULL,
    idx            integer NOT NULL,
    ticket_type_id uuid,
    section_idx    integer,
    row            integer,
    number         integer,
    price_cents    bigint NOT NULL,
    PRIMARY KEY (order_id, idx)
);

CREATE TABLE event_history (
    event_id   uuid NOT NULL,
    position   bigint NOT NULL,
    event_type text NOT NULL,
    at         timestamptz NOT NULL,
    version    integer NOT NULL,
    PRIMARY KEY (event_id, position)
);
