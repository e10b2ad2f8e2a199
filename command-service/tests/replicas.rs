//! Several command-service replicas share one queue group.

mod common;

use command_service::api::{Command, Reply, Request};
use common::System;
use domain::ErrorCode;
use futures::future::join_all;

#[tokio::test]
async fn replicas_share_the_load_and_leaving_ones_drop_no_command() {
    let mut system = System::start().await;
    let (stop_second, second, second_service) = system.replica().await;
    let (stop_third, third, third_service) = system.replica().await;
    let seller = system.user("seller").await;
    let buyers = join_all((0..30).map(|_| system.user("buyer"))).await;
    let ticket = system.ticket(seller, 100).await;

    // Thirty buyers race through three replicas: still exactly one hold.
    let replies =
        join_all(buyers.iter().map(|b| system.send(Request::new(Command::CreateOrder { ticket_id: ticket }).by(*b))))
            .await;
    assert_eq!(replies.iter().filter(|r| matches!(r, Reply::Ok(_))).count(), 1);
    assert_eq!(replies.iter().filter(|r| matches!(r, Reply::Error(f) if f.code == ErrorCode::Conflict)).count(), 29);
    // The queue group spread what was sent so far (31 sign-ups, a listing, 30 holds): both added
    // replicas answered some.
    let (by_second, by_third) = (second_service.answered(), third_service.answered());
    assert!(by_second > 0 && by_third > 0, "replica answers: {by_second} and {by_third}");

    // Two replicas leave while commands are flowing; every command is answered.
    let create =
        || system.send(Request::new(Command::CreateTicket { title: "Gig".into(), price_cents: 500 }).by(seller));
    let during = join_all((0..60).map(|_| create()));
    let leaving = async {
        let _ = stop_second.send(());
        let _ = stop_third.send(());
        let (a, b) = (second.await, third.await);
        assert!(matches!(a, Ok(Ok(()))) && matches!(b, Ok(Ok(()))), "{a:?} {b:?}");
    };
    let (replies, ()) = tokio::join!(during, leaving);
    assert!(replies.iter().all(|r| matches!(r, Reply::Ok(_))), "{replies:?}");

    // The in-process replica is the only one left and answers alone.
    let after = join_all((0..20).map(|_| create())).await;
    assert!(after.iter().all(|r| matches!(r, Reply::Ok(_))));
    system.stop();
}

/// Asks one particular replica, bypassing the queue group.
async fn ask(service: &command_service::Service, request: Request) -> Reply {
    let body = serde_json::to_vec(&request).unwrap_or_default();
    service.answer(request.command.name(), &body).await
}

/// Each replica decides from the state it last wrote; another replica's writes make that state
/// stale. Neither a stale "available" nor a stale "held" may change an answer.
#[tokio::test]
async fn a_replica_with_a_stale_cached_listing_answers_as_the_stream_says() {
    let system = System::start().await;
    let client = testkit::connect(&system.nats.url).await.unwrap_or_else(|e| panic!("{e:#}"));
    let provider = Some(system.provider.clone() as std::sync::Arc<dyn command_service::payments::PaymentProvider>);
    let other = command_service::Service::connect(system.config.clone(), client, provider)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let here = &system.service;
    let seller = system.user("seller").await;
    let (first, second, third) = (system.user("first").await, system.user("second").await, system.user("third").await);

    // Listed here: this replica now holds the listing as available.
    let Reply::Ok(listed) =
        ask(here, Request::new(Command::CreateTicket { title: "Gig".into(), price_cents: 900 }).by(seller)).await
    else {
        panic!("listing refused")
    };
    let command_service::api::Outcome::Ticket { ticket_id, .. } = listed.result else { panic!("{listed:?}") };
    let hold = |buyer| Request::new(Command::CreateOrder { ticket_id }).by(buyer);

    // Held through the other replica: "available" here is stale, and must not win a second hold.
    let Reply::Ok(held) = ask(&other, hold(first)).await else { panic!("first hold refused") };
    let command_service::api::Outcome::Order { order_id, .. } = held.result else { panic!("{held:?}") };
    match ask(here, hold(second)).await {
        Reply::Error(failure) => assert_eq!(failure.code, ErrorCode::Conflict, "{failure:?}"),
        Reply::Ok(success) => panic!("a stale cache let a second hold through: {success:?}"),
    }

    // Cancelled and held again here: this replica now holds the listing as held by the second
    // buyer. Cancelled through the other replica: "held" is stale here, and must not refuse the
    // third buyer.
    let cancel = |order_id, buyer| {
        Request::new(Command::CancelOrder { order_id, ticket_id: Some(ticket_id), event_id: None }).by(buyer)
    };
    assert!(matches!(ask(here, cancel(order_id, first)).await, Reply::Ok(_)));
    let Reply::Ok(held) = ask(here, hold(second)).await else { panic!("second hold refused") };
    let command_service::api::Outcome::Order { order_id, .. } = held.result else { panic!("{held:?}") };
    assert!(matches!(ask(&other, cancel(order_id, second)).await, Reply::Ok(_)));
    match ask(here, hold(third)).await {
        Reply::Ok(_) => {}
        Reply::Error(failure) => panic!("a stale cache refused a hold on an available ticket: {failure:?}"),
    }

    // The stream agrees: one open order, the third buyer's.
    let listing = system.listing(ticket_id).await;
    let open: Vec<_> =
        listing.orders.values().filter(|o| o.status == domain::OrderStatus::Created).map(|o| o.buyer).collect();
    assert_eq!(open, vec![third.id]);
}
