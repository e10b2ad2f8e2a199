//! Pieces the pages share.

mod field;
mod header;
mod status;

pub use field::{Field, FieldProps};
pub use header::Header;
pub use status::{Alert, OrderBadge, TicketBadge};
