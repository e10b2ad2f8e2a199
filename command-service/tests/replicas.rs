//! Several command-service replicas share one queue group.

mod common;

use command_service::api::{Command, Reply, Request};
use common::System;
use domain::ErrorCode;
use futures::future::join_all;

#[tokio::test]
async fn replicas_share_the_load_and_leaving_ones_drop_no_command() {
    let mut system = System::start().await;
    let (stop_second, second) = system.replica().await;
    let (stop_third, third) = system.replica().await;
    let seller = system.user("seller").await;
    let buyers = join_all((0..30).map(|_| system.user("buyer"))).await;
    let ticket = system.ticket(seller, 100).await;

    // Thirty buyers race through three replicas: still exactly one hold.
    let replies =
        join_all(buyers.iter().map(|b| system.send(Request::new(Command::CreateOrder { ticket_id: ticket }).by(*b))))
            .await;
    assert_eq!(replies.iter().filter(|r| matches!(r, Reply::Ok(_))).count(), 1);
    assert_eq!(replies.iter().filter(|r| matches!(r, Reply::Error(f) if f.code == ErrorCode::Conflict)).count(), 29);

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
