//! Pieces the pages share.

mod field;
mod header;
mod search;
mod status;

pub use field::{Field, FieldProps};
pub use header::Header;
pub use search::{DEBOUNCE_MS, SearchBox, SearchBoxProps};
pub use status::{Alert, OrderBadge, TicketBadge};
