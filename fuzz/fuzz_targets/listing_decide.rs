//! Any sequence of listing commands (list, edit, hold, cancel, expire, pay, settle) from a few
//! accounts at arbitrary times: `decide` never panics, and after every accepted decision the
//! listing keeps its rules: at most one open order, at most one paid order, a sold ticket has
//! exactly one paid order and a held one exactly one open order.
#![no_main]

use domain::testing::{account, at, order, ticket};
use domain::{
    Actor, Aggregate, Listing, ListingCommand, OrderCommand, OrderStatus, PaymentCommand, PaymentId, PaymentOutcome,
    Price, TicketStatus,
};
use domain::{TicketCommand, Title};
use libfuzzer_sys::fuzz_target;

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
                idempotency_key: (key % 2 == 0).then(|| format!("key-{key}")),
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

fuzz_target!(|bytes: &[u8]| {
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
});
