//! Accounts through the NATS command API.

mod common;

use command_service::api::{Command, Outcome, Reply, Request, Role};
use common::System;
use domain::{Account, AccountId, ErrorCode, Event, SessionId, subjects};
use futures::future::join_all;

fn sign_up(email: &str, password: &str) -> Request {
    Request::new(Command::SignUp { email: email.into(), password: password.into(), client_addr: None })
}

fn sign_in(email: &str, password: &str, addr: Option<&str>) -> Request {
    Request::new(Command::SignIn {
        email: email.into(),
        password: password.into(),
        client_addr: addr.map(str::to_owned),
    })
}

fn session_of(outcome: &Outcome) -> (AccountId, String, Vec<Role>, SessionId) {
    match outcome {
        Outcome::Session { account_id, email, roles, session_id } => {
            (*account_id, email.clone(), roles.clone(), *session_id)
        }
        other => panic!("not a session: {other:?}"),
    }
}

#[tokio::test]
async fn signing_up_normalizes_the_email_stores_an_argon2id_hash_and_signs_in() {
    let system = System::start().await;
    let success = system.ok(sign_up("  Ada@Example.COM ", "correct horse")).await;
    let (account_id, email, roles, _) = session_of(&success.result);
    assert_eq!((email.as_str(), roles), ("ada@example.com", vec![Role::User]));

    let loaded =
        system.service.store().load::<Account>(&subjects::account(account_id)).await.unwrap_or_else(|e| panic!("{e}"));
    let hash = loaded.state.profile.map(|p| p.password_hash).unwrap_or_default();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert!(!hash.contains("correct horse"));
    assert_eq!(success.position, loaded.last_sequence);
}

#[tokio::test]
async fn bad_sign_up_input_names_its_field_and_changes_nothing() {
    let system = System::start().await;
    let bad_email = system.fail(sign_up("not-an-email", "correct horse")).await;
    assert_eq!((bad_email.code, bad_email.field.as_deref()), (ErrorCode::BadUserInput, Some("email")));
    let short = system.fail(sign_up("ok@example.com", "short")).await;
    assert_eq!((short.code, short.field.as_deref()), (ErrorCode::BadUserInput, Some("password")));
    let long = system.fail(sign_up("ok@example.com", &"x".repeat(129))).await;
    assert_eq!(long.field.as_deref(), Some("password"));
    // Nothing was claimed: the address is still free.
    system.ok(sign_up("ok@example.com", "correct horse")).await;
}

#[tokio::test]
async fn an_email_already_registered_is_a_conflict_on_the_email_field() {
    let system = System::start().await;
    system.ok(sign_up("taken@example.com", "correct horse")).await;
    let again = system.fail(sign_up("TAKEN@example.com", "another password")).await;
    assert_eq!((again.code, again.field.as_deref()), (ErrorCode::Conflict, Some("email")));
}

#[tokio::test]
async fn twenty_simultaneous_sign_ups_with_one_email_make_exactly_one_account() {
    let system = System::start().await;
    let replies = join_all((0..20).map(|n| system.send(sign_up("race@example.com", &format!("password-{n}"))))).await;
    let winners: Vec<_> = replies.iter().filter_map(|r| if let Reply::Ok(s) = r { Some(s) } else { None }).collect();
    assert_eq!(winners.len(), 1, "{replies:?}");
    let conflicts = replies
        .iter()
        .filter(
            |r| matches!(r, Reply::Error(f) if f.code == ErrorCode::Conflict && f.field.as_deref() == Some("email")),
        )
        .count();
    assert_eq!(conflicts, 19);

    // One registration in the whole stream, and the winner's password is the one that works.
    let registrations = system
        .service
        .store()
        .read("ticketing.account.*", 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|e| matches!(e.event, Event::AccountRegistered { .. }))
        .count();
    assert_eq!(registrations, 1);
    let (winner, ..) = session_of(&winners[0].result);
    let winning = replies.iter().position(|r| matches!(r, Reply::Ok(_))).unwrap_or_default();
    let ok = system.ok(sign_in("race@example.com", &format!("password-{winning}"), None)).await;
    assert_eq!(session_of(&ok.result).0, winner);
    let loser = (winning + 1) % 20;
    assert_eq!(
        system.code(sign_in("race@example.com", &format!("password-{loser}"), None)).await,
        ErrorCode::Unauthenticated
    );
}

#[tokio::test]
async fn unknown_email_and_wrong_password_give_the_same_answer() {
    let system = System::start().await;
    system.ok(sign_up("known@example.com", "correct horse")).await;
    let wrong = system.fail(sign_in("known@example.com", "wrong horse", None)).await;
    let unknown = system.fail(sign_in("nobody@example.com", "correct horse", None)).await;
    assert_eq!(wrong.code, ErrorCode::Unauthenticated);
    assert_eq!((wrong.code, &wrong.message, wrong.field), (unknown.code, &unknown.message, unknown.field));
    let ok = system.ok(sign_in(" Known@Example.com", "correct horse", None)).await;
    assert_eq!(session_of(&ok.result).1, "known@example.com");
}

#[tokio::test]
async fn admins_come_from_admin_emails() {
    let system = System::start().await;
    let admin = system.ok(sign_up(common::ADMIN_EMAIL, "correct horse")).await;
    assert_eq!(session_of(&admin.result).2, vec![Role::User, Role::Admin]);
    let again = system.ok(sign_in(common::ADMIN_EMAIL, "correct horse", None)).await;
    assert!(session_of(&again.result).2.contains(&Role::Admin));
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_email_even_with_the_right_password() {
    let system = System::start().await;
    system.ok(sign_up("victim@example.com", "correct horse")).await;
    for _ in 0..5 {
        assert_eq!(system.code(sign_in("victim@example.com", "guess", None)).await, ErrorCode::Unauthenticated);
    }
    assert_eq!(system.code(sign_in("victim@example.com", "correct horse", None)).await, ErrorCode::RateLimited);
    // Another account is not affected.
    system.ok(sign_up("bystander@example.com", "correct horse")).await;
    system.ok(sign_in("bystander@example.com", "correct horse", None)).await;
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_client_address() {
    let system = System::start_with(|c| c.signin_max_failures_per_addr = 3).await;
    system.ok(sign_up("someone@example.com", "correct horse")).await;
    for n in 0..3 {
        let probe = sign_in(&format!("probe{n}@example.com"), "guess", Some("203.0.113.7"));
        assert_eq!(system.code(probe).await, ErrorCode::Unauthenticated);
    }
    let from_attacker = sign_in("someone@example.com", "correct horse", Some("203.0.113.7"));
    assert_eq!(system.code(from_attacker).await, ErrorCode::RateLimited);
    system.ok(sign_in("someone@example.com", "correct horse", Some("198.51.100.1"))).await;
}

#[tokio::test]
async fn a_signed_out_session_stays_revoked_across_a_restart() {
    let mut system = System::start().await;
    let success = system.ok(sign_up("leaver@example.com", "correct horse")).await;
    let (account_id, _, _, session_id) = session_of(&success.result);
    let other_session = session_of(&system.ok(sign_in("leaver@example.com", "correct horse", None)).await.result).3;
    let authenticate = |session_id| Request::new(Command::Authenticate { account_id, session_id });
    system.ok(authenticate(session_id)).await;

    let expires_at = time::OffsetDateTime::now_utc() + time::Duration::hours(24);
    let actor = domain::Actor::user(account_id);
    assert_eq!(
        system.ok(Request::new(Command::SignOut { session_id, expires_at }).by(actor)).await.result,
        Outcome::SignedOut
    );
    assert_eq!(system.code(authenticate(session_id)).await, ErrorCode::Unauthenticated);

    system.restart().await;
    assert_eq!(system.code(authenticate(session_id)).await, ErrorCode::Unauthenticated);
    system.ok(authenticate(other_session)).await;
    // Signing out twice is harmless.
    system.ok(Request::new(Command::SignOut { session_id, expires_at }).by(actor)).await;
}

#[tokio::test]
async fn malformed_and_misrouted_commands_are_refused_as_bad_input() {
    let system = System::start().await;
    let subject = system.service.store().settings().wire_subject("ticketing.cmd.signUp");
    let reply = system.nats.client.request(subject.clone(), "{not json".into()).await.unwrap_or_else(|e| panic!("{e}"));
    let reply: Reply = serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(reply, Reply::Error(f) if f.code == ErrorCode::BadUserInput));

    let wrong_subject = serde_json::to_vec(&Request::new(Command::CreateTicket { title: "x".into(), price_cents: 1 }))
        .unwrap_or_default();
    let reply = system.nats.client.request(subject, wrong_subject.into()).await.unwrap_or_else(|e| panic!("{e}"));
    let reply: Reply = serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(reply, Reply::Error(f) if f.code == ErrorCode::BadUserInput));
}
