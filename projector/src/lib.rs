//! The read side's writer: durable JetStream consumers that project events into PostgreSQL read
//! models, idempotently, with the checkpoint in the same transaction.
//!
//! Built in issue 4.
