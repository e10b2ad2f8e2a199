//! The properties the fuzz targets check, as plain functions: libFuzzer calls them from
//! `fuzz/fuzz_targets` (nightly), and `domain/tests/fuzz_replay.rs` replays the committed seed
//! corpus (`fuzz/corpus`) and mutations of it through them on stable, so they run in every test
//! run. Each panics when a property fails.

use crate::testing::{account, at, order, ticket};
use crate::{
    Account, AccountCommand, Actor, Aggregate, Email, Event, EventEnvelope, HoldRequest, Listing, ListingCommand,
    OrderCommand, OrderStatus, PaymentCommand, PaymentId, PaymentOutcome, Price, SeatStatus, SessionId, Show,
    ShowCommand, ShowId, TicketCommand, TicketStatus, TicketTypeId, Title,
};

/// Any bytes given to the event decoder: it never panics, and whatever it accepts encodes and
/// decodes back to the same event (what the store holds is what the aggregates replay).
pub fn event_decode(bytes: &[u8]) {
    if let Ok(event) = EventEnvelope::decode(bytes) {
        let encoded =
            EventEnvelope::encode(&event).unwrap_or_else(|e| panic!("an accepted event cannot be encoded: {e}"));
        match EventEnvelope::decode(&encoded) {
            Ok(again) => assert_eq!(again, event, "an accepted event does not survive a round trip"),
            Err(error) => panic!("an accepted event cannot be read back once written: {error}"),
        }
    }
}

/// Reads the script one byte at a time; zeros once it runs out.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }

    fn actor(&mut self) -> Actor {
        let n = self.byte();
        Actor { id: account(u128::from(n % 4)), is_admin: n % 4 == 3 }
    }
}

fn command(script: &mut Script<'_>) -> ListingCommand {
    let when = at(i64::from(script.byte()) * 10);
    match script.byte() % 7 {
        0 => ListingCommand::Ticket(TicketCommand::List {
            ticket_id: ticket(1),
            seller: account(u128::from(script.byte() % 3)),
            title: Title::parse("Fuzzed seat").unwrap_or_else(|e| panic!("{e}")),
            price: Price::from_cents(i64::from(script.byte()) + 1).unwrap_or_else(|e| panic!("{e}")),
            at: when,
        }),
        1 => ListingCommand::Ticket(TicketCommand::Update {
            actor: script.actor(),
            title: None,
            price: Price::from_cents(i64::from(script.byte()) + 1).ok(),
            at: when,
        }),
        2 => {
            let key = script.byte();
            ListingCommand::Order(OrderCommand::Place {
                order_id: order(u128::from(script.byte() % 4)),
                buyer: account(u128::from(script.byte() % 3)),
                expires_at: at(i64::from(script.byte()) * 10),
                idempotency_key: key.is_multiple_of(2).then(|| format!("key-{key}")),
                at: when,
            })
        }
        3 => ListingCommand::Order(OrderCommand::Cancel {
            order_id: order(u128::from(script.byte() % 4)),
            actor: script.actor(),
            at: when,
        }),
        4 => ListingCommand::Order(OrderCommand::Expire { order_id: order(u128::from(script.byte() % 4)), at: when }),
        5 => {
            let order_id = order(u128::from(script.byte() % 4));
            let key = format!("pay-{}", script.byte() % 3);
            ListingCommand::Payment(PaymentCommand::Start {
                payment_id: PaymentId::for_idempotency_key(order_id, &key),
                order_id,
                actor: script.actor(),
                idempotency_key: key,
                at: when,
            })
        }
        _ => {
            let order_id = order(u128::from(script.byte() % 4));
            let payment_id = PaymentId::for_idempotency_key(order_id, &format!("pay-{}", script.byte() % 3));
            let provider_ref = format!("pi_{}", script.byte() % 3);
            let outcome = match script.byte() % 4 {
                0 => PaymentOutcome::Pending { provider_ref },
                1 => PaymentOutcome::Succeeded { provider_ref },
                2 => PaymentOutcome::Failed { reason: "card_declined".into() },
                _ => PaymentOutcome::Refunded,
            };
            ListingCommand::Payment(PaymentCommand::Settle { payment_id, outcome, at: when })
        }
    }
}

/// Any sequence of listing commands (list, edit, hold, cancel, expire, pay, settle) from a few
/// accounts at arbitrary times: `decide` never panics, and after every accepted decision the
/// listing keeps its rules: at most one open order, at most one paid order, a sold ticket has
/// exactly one paid order and a held one exactly one open order.
pub fn listing_decide(bytes: &[u8]) {
    let mut script = Script(bytes);
    let mut listing = Listing::default();
    for _ in 0..64 {
        if script.0.is_empty() {
            break;
        }
        let Ok(events) = listing.decide(command(&mut script)) else { continue };
        for event in &events {
            listing = listing.evolve(event);
        }
        let open = listing.orders.values().filter(|o| o.is_open()).count();
        let paid = listing.orders.values().filter(|o| o.status == OrderStatus::Complete).count();
        assert!(open <= 1, "{open} open orders: {listing:?}");
        assert!(paid <= 1, "{paid} paid orders: {listing:?}");
        if let Some(ticket) = &listing.ticket {
            match ticket.status {
                TicketStatus::Sold => assert_eq!(paid, 1, "sold without one paid order: {listing:?}"),
                TicketStatus::Reserved => assert_eq!(open, 1, "reserved without one open order: {listing:?}"),
                TicketStatus::Available => assert_eq!(open + paid, 0, "available but taken: {listing:?}"),
            }
        }
    }
}

fn session(n: u8) -> SessionId {
    SessionId::from_uuid(uuid::Uuid::from_u128(u128::from(n % 4) + 1))
}

/// Any sequence of account commands (register, revoke a session, claim and release hold slots)
/// at arbitrary times and limits: `decide` never panics, and after every accepted decision the
/// account keeps its rules: a claim never takes the account past the limit it was decided under,
/// the first registration stands, and a revoked session stays revoked.
pub fn account_decide(bytes: &[u8]) {
    let mut script = bytes.iter().copied();
    let mut next = move || script.next();
    let mut state = Account::default();
    let mut first_email: Option<Email> = None;
    let mut revoked: Vec<SessionId> = Vec::new();
    while let (Some(kind), Some(time), Some(a), Some(b)) = (next(), next(), next(), next()) {
        let when = at(i64::from(time) * 10);
        let (command, limit) = match kind % 4 {
            0 => {
                let email = Email::parse(&format!("user{}@example.com", a % 3)).unwrap_or_else(|e| panic!("{e}"));
                let register = AccountCommand::Register {
                    account_id: account(1),
                    email,
                    password_hash: format!("hash-{b}"),
                    at: when,
                };
                (register, None)
            }
            1 => (
                AccountCommand::RevokeSession { session_id: session(a), expires_at: at(i64::from(b) * 10), at: when },
                None,
            ),
            2 => {
                let max_active = usize::from(b % 5) + 1;
                let claim = AccountCommand::ClaimHoldSlot {
                    order_id: order(u128::from(a % 8)),
                    ticket_id: Some(ticket(u128::from(a % 8))),
                    show_id: None,
                    expires_at: at(i64::from(time) * 10 + i64::from(b) * 10),
                    max_active,
                    at: when,
                };
                (claim, Some(max_active))
            }
            _ => (AccountCommand::ReleaseHoldSlot { order_id: order(u128::from(a % 8)), at: when }, None),
        };
        let revoking = match &command {
            AccountCommand::RevokeSession { session_id, .. } => Some(*session_id),
            _ => None,
        };
        let Ok(events) = state.decide(command) else { continue };
        for event in &events {
            state = state.evolve(event);
        }
        if let Some(limit) = limit.filter(|_| !events.is_empty()) {
            let active = state.active_holds();
            assert!(active <= limit, "{active} active holds under a limit of {limit}: {state:?}");
        }
        if let Some(profile) = &state.profile {
            let first = first_email.get_or_insert_with(|| profile.email.clone());
            assert_eq!(&profile.email, first, "a second registration replaced the first");
        }
        if let Some(session) = revoking.filter(|_| !events.is_empty()) {
            revoked.push(session);
        }
        for session in &revoked {
            assert!(state.is_session_revoked(*session), "a revoked session came back: {state:?}");
        }
    }
}

/// The show every [`show_decide`] script plays on: two ticket types (3 and 2 tickets) and a
/// section of 2 × 3 seats, organised by account 0.
fn fuzzed_show() -> Show {
    use crate::show::definition::{SectionDraft, ShowDraft, TicketTypeDraft};
    let draft = ShowDraft {
        title: "Fuzzed show".into(),
        venue: "Hall".into(),
        starts_at: at(5_000),
        ticket_types: vec![
            TicketTypeDraft { name: "Standing".into(), price_cents: 100, capacity: 3 },
            TicketTypeDraft { name: "VIP".into(), price_cents: 500, capacity: 2 },
        ],
        sections: vec![SectionDraft { name: "A".into(), price_cents: 300, rows: 2, seats_per_row: 3 }],
    };
    let create = ShowCommand::Create { show_id: fuzzed_show_id(), organizer: account(0), draft, at: at(0) };
    let events = Show::default().decide(create).unwrap_or_else(|e| panic!("{e}"));
    Show::replay(&events)
}

fn fuzzed_show_id() -> ShowId {
    ShowId::from_uuid(uuid::Uuid::from_u128(77))
}

fn hold_request(script: &mut Script<'_>, when: crate::Timestamp) -> HoldRequest {
    let types = [TicketTypeId::of(fuzzed_show_id(), 0), TicketTypeId::of(fuzzed_show_id(), 1)];
    let mut tickets = Vec::new();
    for _ in 0..script.byte() % 3 {
        let b = script.byte();
        // Now and then a quantity of 0, which is refused.
        tickets.push((types[usize::from(b % 2)], if b % 16 == 1 { 0 } else { i64::from(1 + b / 2 % 3) }));
    }
    let mut seats = Vec::new();
    for _ in 0..script.byte() % 4 {
        let b = script.byte();
        // Mostly real seats (of only six, so requests overlap), sometimes one that does not exist.
        let row = if b.is_multiple_of(16) { 3 } else { 1 + b % 2 };
        let seat = format!("A-{row}-{}", 1 + b / 2 % 3);
        // Now and then the same seat twice, which is refused.
        if b % 16 == 1 || !seats.contains(&seat) {
            seats.push(seat);
        }
    }
    let n = script.byte();
    HoldRequest {
        // An order id mostly stands for one buyer; now and then the organiser (account 0) asks.
        order_id: order(u128::from(n % 16)),
        buyer: account(if n >= 240 { u128::from(n % 2) } else { 1 + u128::from(n % 16 % 3) }),
        tickets,
        seats,
        // Now and then lapsed already.
        expires_at: when + time::Duration::seconds(i64::from(script.byte() % 64) * 20),
        idempotency_key: None,
    }
}

/// Any sequence of show commands (groups of holds decided together, cancellations and expiries
/// by anyone at any time) from a few accounts: `decide` never panics, and after every accepted
/// decision the show keeps its rules: each ticket type has exactly its open orders' tickets held
/// and never more held and sold than its capacity; each seat is reserved exactly when one open
/// order holds it, and no seat is in two open orders.
pub fn show_decide(bytes: &[u8]) {
    let mut script = Script(bytes);
    let mut show = fuzzed_show();
    for _ in 0..64 {
        if script.0.is_empty() {
            break;
        }
        let when = at(i64::from(script.byte()) * 18);
        let events = match script.byte() % 4 {
            0 | 1 => {
                let requests: Vec<HoldRequest> =
                    (0..=script.byte() % 3).map(|_| hold_request(&mut script, when)).collect();
                let (event, answers) = show.decide_holds(&requests, when);
                let placed = answers.iter().filter(|a| matches!(a, Ok(crate::Held::Placed))).count();
                let written = match &event {
                    Some(Event::ShowOrdersPlaced { orders, .. }) => orders.len(),
                    _ => 0,
                };
                assert_eq!(placed, written, "answers and the written event disagree: {answers:?}");
                event.into_iter().collect()
            }
            2 => {
                let command = ShowCommand::Cancel {
                    order_id: order(u128::from(script.byte() % 8)),
                    actor: script.actor(),
                    at: when,
                };
                show.decide(command).unwrap_or_default()
            }
            3 if script.byte() % 2 == 0 => {
                let order_id = order(u128::from(script.byte() % 16));
                let key = format!("pay-{}", script.byte() % 2);
                let command = ShowCommand::Payment(PaymentCommand::Start {
                    payment_id: PaymentId::for_idempotency_key(order_id, &key),
                    order_id,
                    actor: script.actor(),
                    idempotency_key: key,
                    at: when,
                });
                show.decide(command).unwrap_or_default()
            }
            3 => {
                let order_id = order(u128::from(script.byte() % 16));
                let payment_id = PaymentId::for_idempotency_key(order_id, &format!("pay-{}", script.byte() % 2));
                let outcome = match script.byte() % 3 {
                    0 => PaymentOutcome::Succeeded { provider_ref: "pi".into() },
                    1 => PaymentOutcome::Failed { reason: "card_declined".into() },
                    _ => PaymentOutcome::Refunded,
                };
                show.decide(ShowCommand::Payment(PaymentCommand::Settle { payment_id, outcome, at: when }))
                    .unwrap_or_default()
            }
            _ => show
                .decide(ShowCommand::Expire { order_id: order(u128::from(script.byte() % 8)), at: when })
                .unwrap_or_default(),
        };
        for event in &events {
            show = show.evolve(event);
        }
        let open: Vec<_> = show.orders.values().filter(|o| o.is_open()).collect();
        for stock in &show.ticket_types {
            let held: u32 = open
                .iter()
                .flat_map(|o| &o.placed.tickets)
                .filter(|l| l.ticket_type_id == stock.ticket_type.id)
                .map(|l| l.quantity)
                .sum();
            assert_eq!(stock.held, held, "held count off: {show:?}");
            let sold: u32 = show
                .orders
                .values()
                .filter(|o| o.status == OrderStatus::Complete)
                .flat_map(|o| &o.placed.tickets)
                .filter(|l| l.ticket_type_id == stock.ticket_type.id)
                .map(|l| l.quantity)
                .sum();
            assert_eq!(stock.sold, sold, "sold count off: {show:?}");
            assert!(stock.held + stock.sold <= stock.ticket_type.capacity, "oversold: {show:?}");
        }
        for section in &show.sections {
            for (index, status) in section.seats.iter().enumerate() {
                let seat = section.section.seat_at(index);
                let holders = open.iter().filter(|o| o.placed.seats.iter().any(|l| l.seat == seat)).count();
                let buyers = show
                    .orders
                    .values()
                    .filter(|o| o.status == OrderStatus::Complete && o.placed.seats.iter().any(|l| l.seat == seat))
                    .count();
                assert!(holders + buyers <= 1, "{seat} in {holders} open and {buyers} paid orders: {show:?}");
                assert_eq!(*status == SeatStatus::Reserved, holders == 1, "{seat} is {status:?}: {show:?}");
                assert_eq!(*status == SeatStatus::Sold, buyers == 1, "{seat} is {status:?}: {show:?}");
            }
            let free = section.seats.iter().filter(|s| **s == SeatStatus::Available).count();
            assert_eq!(usize::try_from(section.available).unwrap_or(0), free, "available count off: {show:?}");
        }
        for o in &open {
            assert!(o.ticket_count() >= 1 && o.ticket_count() <= 10, "an order of {} tickets", o.ticket_count());
            assert_ne!(o.placed.buyer, account(0), "the organiser bought: {show:?}");
        }
    }
}
