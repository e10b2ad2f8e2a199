//! Any sequence of account commands (register, revoke a session, claim and release hold slots)
//! at arbitrary times and limits: `decide` never panics, and after every accepted decision the
//! account keeps its rules: a claim never takes the account past the limit it was decided under,
//! the first registration stands, and a revoked session stays revoked.
#![no_main]

use domain::testing::{account, at, order, ticket};
use domain::{Account, AccountCommand, Aggregate, Email, SessionId};
use libfuzzer_sys::fuzz_target;

fn session(n: u8) -> SessionId {
    SessionId::from_uuid(uuid::Uuid::from_u128(u128::from(n % 4) + 1))
}

fuzz_target!(|bytes: &[u8]| {
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
                    ticket_id: ticket(u128::from(a % 8)),
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
});
