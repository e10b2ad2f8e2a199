//! What an organiser puts on sale: the show's title, venue and time, its general-admission ticket
//! types and its sections of numbered seats, with the rules `createEvent` checks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ShowError;
use crate::ids::{ShowId, TicketTypeId};
use crate::money::Price;
use crate::{Timestamp, Title, TitleError};

/// The longest ticket type name, in characters.
pub const MAX_TYPE_NAME_CHARS: usize = 60;
/// The longest section name, in characters.
pub const MAX_SECTION_NAME_CHARS: usize = 20;
/// The most tickets one ticket type may have.
pub const MAX_TYPE_CAPACITY: u32 = 100_000;
/// The most rows a section may have.
pub const MAX_ROWS: u16 = 100;
/// The most seats a row may have.
pub const MAX_SEATS_PER_ROW: u16 = 200;
/// The most tickets (general admission and seats together) one show may have.
pub const MAX_TOTAL_CAPACITY: u32 = 200_000;

/// A ticket type as the organiser typed it, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketTypeDraft {
    /// Its name, e.g. "Early bird".
    pub name: String,
    /// Its price, in cents.
    pub price_cents: i64,
    /// How many tickets it has.
    pub capacity: i64,
}

/// A section as the organiser typed it, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionDraft {
    /// Its name, e.g. "Stalls": the first part of its seats' ids.
    pub name: String,
    /// The price of each of its seats, in cents.
    pub price_cents: i64,
    /// How many rows it has.
    pub rows: i64,
    /// How many seats each row has.
    pub seats_per_row: i64,
}

/// A whole show as the organiser typed it, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowDraft {
    /// The title, e.g. "Rock Arena".
    pub title: String,
    /// Where it takes place.
    pub venue: String,
    /// When it starts.
    pub starts_at: Timestamp,
    /// General-admission tiers.
    pub ticket_types: Vec<TicketTypeDraft>,
    /// Sections of numbered seats.
    pub sections: Vec<SectionDraft>,
}

/// A general-admission tier: a name, a price and how many tickets it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketType {
    /// Its id, derived from the show and its position ([`TicketTypeId::of`]).
    pub id: TicketTypeId,
    /// Its name, unique in the show.
    pub name: String,
    /// The price of one ticket.
    pub price_cents: Price,
    /// How many tickets it has.
    pub capacity: u32,
}

/// A block of numbered seats, all at one price: `rows` rows of `seats_per_row` seats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Its name, unique in the show (letters, digits and spaces).
    pub name: String,
    /// The price of each seat.
    pub price_cents: Price,
    /// How many rows it has (numbered from 1).
    pub rows: u16,
    /// How many seats each row has (numbered from 1).
    pub seats_per_row: u16,
}

impl Section {
    /// How many seats it has.
    pub fn seat_count(&self) -> u32 {
        u32::from(self.rows) * u32::from(self.seats_per_row)
    }

    /// Where a seat of this section sits in a row-major list of its seats; `None` for a row or
    /// number it does not have.
    pub fn seat_index(&self, row: u16, number: u16) -> Option<usize> {
        let inside = (1..=self.rows).contains(&row) && (1..=self.seats_per_row).contains(&number);
        inside.then(|| usize::from(row - 1) * usize::from(self.seats_per_row) + usize::from(number - 1))
    }

    /// The seat at a row-major index (see [`Section::seat_index`]).
    pub fn seat_at(&self, index: usize) -> SeatId {
        let per_row = usize::from(self.seats_per_row.max(1));
        let row = u16::try_from(index / per_row + 1).unwrap_or(u16::MAX);
        let number = u16::try_from(index % per_row + 1).unwrap_or(u16::MAX);
        SeatId { section: self.name.clone(), row, number }
    }
}

/// A seat's id: `<section>-<row>-<number>`, e.g. `A-3-17` (rows and numbers from 1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeatId {
    /// The section's name.
    pub section: String,
    /// The row, from 1.
    pub row: u16,
    /// The seat's number in its row, from 1.
    pub number: u16,
}

impl fmt::Display for SeatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.section, self.row, self.number)
    }
}

/// A text that is not a seat id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a seat id (<section>-<row>-<number>)")]
pub struct NotASeatId;

impl FromStr for SeatId {
    type Err = NotASeatId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Section names hold no '-', so the last two dashes split the row and number off.
        let mut parts = s.rsplitn(3, '-');
        let (Some(number), Some(row), Some(section)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NotASeatId);
        };
        let digits = |t: &str| !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit());
        if section.is_empty() || !digits(row) || !digits(number) {
            return Err(NotASeatId);
        }
        Ok(Self {
            section: section.to_owned(),
            row: row.parse().map_err(|_| NotASeatId)?,
            number: number.parse().map_err(|_| NotASeatId)?,
        })
    }
}

impl Serialize for SeatId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SeatId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A show's checked definition, as [`ShowDraft`] becomes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The title.
    pub title: Title,
    /// The venue.
    pub venue: Title,
    /// When it starts.
    pub starts_at: Timestamp,
    /// Its ticket types, in the organiser's order.
    pub ticket_types: Vec<TicketType>,
    /// Its sections, in the organiser's order.
    pub sections: Vec<Section>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ShowError {
    ShowError::Invalid { field: field.into(), reason: reason.into() }
}

fn title_reason(what: &str, error: &TitleError) -> String {
    match error {
        TitleError::Empty => format!("{what} is required"),
        TitleError::TooLong => format!("{what} must be at most 120 characters"),
        TitleError::ControlCharacter => format!("{what} must not contain control characters"),
    }
}

/// Checks a title or venue (trimmed, 1..=120 characters, one line).
///
/// # Errors
/// [`ShowError::Invalid`] naming `field`.
pub fn parse_title(field: &'static str, raw: &str) -> Result<Title, ShowError> {
    Title::parse(raw).map_err(|e| invalid(field, title_reason(field, &e)))
}

/// Checks a start time against the time of the command: it must be in the future.
///
/// # Errors
/// [`ShowError::Invalid`] on `startsAt`.
pub fn check_starts_at(starts_at: Timestamp, at: Timestamp) -> Result<Timestamp, ShowError> {
    if starts_at > at { Ok(starts_at) } else { Err(invalid("startsAt", "startsAt must be in the future")) }
}

fn price(field: String, cents: i64) -> Result<Price, ShowError> {
    Price::from_cents(cents).map_err(|_| invalid(field, "price must be between 1 and 10000000 cents"))
}

fn bounded(field: String, value: i64, max: u32, what: &str) -> Result<u32, ShowError> {
    u32::try_from(value)
        .ok()
        .filter(|v| (1..=max).contains(v))
        .ok_or_else(|| invalid(field, format!("{what} must be between 1 and {max}")))
}

fn name(field: String, raw: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<String, ShowError> {
    let name = raw.trim();
    let count = name.chars().count();
    if count == 0 || count > max {
        return Err(invalid(field, format!("name must be 1 to {max} characters")));
    }
    if !name.chars().all(allowed) {
        return Err(invalid(field, "name has characters that are not allowed"));
    }
    Ok(name.to_owned())
}

/// Checks a draft as of the command's time, deriving the ticket types' ids from the show's.
///
/// # Errors
/// [`ShowError::Invalid`] naming the first field at fault as a path (`ticketTypes.1.capacity`).
pub fn check(show_id: ShowId, draft: &ShowDraft, at: Timestamp) -> Result<Definition, ShowError> {
    let title = parse_title("title", &draft.title)?;
    let venue = parse_title("venue", &draft.venue)?;
    let starts_at = check_starts_at(draft.starts_at, at)?;
    if draft.ticket_types.is_empty() && draft.sections.is_empty() {
        return Err(invalid("ticketTypes", "an event needs at least one ticket type or one section"));
    }
    let mut total: u32 = 0;
    let mut ticket_types = Vec::with_capacity(draft.ticket_types.len());
    for (i, t) in draft.ticket_types.iter().enumerate() {
        let path = |leaf: &str| format!("ticketTypes.{i}.{leaf}");
        let name = name(path("name"), &t.name, MAX_TYPE_NAME_CHARS, |c| !c.is_control())?;
        if ticket_types.iter().any(|other: &TicketType| other.name.to_lowercase() == name.to_lowercase()) {
            return Err(invalid(path("name"), "ticket type names must be unique in the event"));
        }
        let price_cents = price(path("priceCents"), t.price_cents)?;
        let capacity = bounded(path("capacity"), t.capacity, MAX_TYPE_CAPACITY, "capacity")?;
        total += capacity;
        if total > MAX_TOTAL_CAPACITY {
            return Err(invalid(path("capacity"), "an event has at most 200000 tickets in all"));
        }
        ticket_types.push(TicketType { id: TicketTypeId::of(show_id, i), name, price_cents, capacity });
    }
    let mut sections = Vec::with_capacity(draft.sections.len());
    for (i, s) in draft.sections.iter().enumerate() {
        let path = |leaf: &str| format!("sections.{i}.{leaf}");
        let name = name(path("name"), &s.name, MAX_SECTION_NAME_CHARS, |c| c.is_alphanumeric() || c == ' ')?;
        if sections.iter().any(|other: &Section| other.name.to_lowercase() == name.to_lowercase()) {
            return Err(invalid(path("name"), "section names must be unique in the event"));
        }
        let price_cents = price(path("priceCents"), s.price_cents)?;
        let rows = bounded(path("rows"), s.rows, u32::from(MAX_ROWS), "rows")?;
        let seats_per_row = bounded(path("seatsPerRow"), s.seats_per_row, u32::from(MAX_SEATS_PER_ROW), "seatsPerRow")?;
        total += rows * seats_per_row;
        if total > MAX_TOTAL_CAPACITY {
            return Err(invalid(path("rows"), "an event has at most 200000 tickets in all"));
        }
        sections.push(Section {
            name,
            price_cents,
            rows: u16::try_from(rows).unwrap_or(MAX_ROWS),
            seats_per_row: u16::try_from(seats_per_row).unwrap_or(MAX_SEATS_PER_ROW),
        });
    }
    Ok(Definition { title, venue, starts_at, ticket_types, sections })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::at;

    fn draft() -> ShowDraft {
        ShowDraft {
            title: "  Rock Arena ".into(),
            venue: "Town Hall".into(),
            starts_at: at(86_400),
            ticket_types: vec![
                TicketTypeDraft { name: "Early bird".into(), price_cents: 2_500, capacity: 100 },
                TicketTypeDraft { name: "Regular".into(), price_cents: 4_000, capacity: 400 },
            ],
            sections: vec![SectionDraft { name: "A".into(), price_cents: 9_000, rows: 10, seats_per_row: 20 }],
        }
    }

    fn field_of(draft: &ShowDraft) -> Option<String> {
        match check(ShowId::from_uuid(uuid::Uuid::from_u128(1)), draft, at(0)) {
            Err(ShowError::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn a_good_draft_is_trimmed_and_its_ticket_types_get_ids_derived_from_the_show() {
        let show = ShowId::from_uuid(uuid::Uuid::from_u128(1));
        let checked = check(show, &draft(), at(0)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checked.title.as_str(), "Rock Arena");
        assert_eq!(checked.ticket_types[1].id, TicketTypeId::of(show, 1));
        assert_ne!(checked.ticket_types[0].id, checked.ticket_types[1].id);
        assert_eq!(checked.sections[0].seat_count(), 200);
    }

    #[test]
    fn every_rule_names_its_field_as_a_path() {
        type Change = Box<dyn Fn(&mut ShowDraft)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|d| d.title = " ".into()), "title"),
            (Box::new(|d| d.venue = "x".repeat(121)), "venue"),
            (Box::new(|d| d.starts_at = at(0)), "startsAt"),
            (
                Box::new(|d| {
                    d.ticket_types.clear();
                    d.sections.clear();
                }),
                "ticketTypes",
            ),
            (Box::new(|d| d.ticket_types[1].name = "x".repeat(61)), "ticketTypes.1.name"),
            (Box::new(|d| d.ticket_types[1].name = "early BIRD".into()), "ticketTypes.1.name"),
            (Box::new(|d| d.ticket_types[0].price_cents = 0), "ticketTypes.0.priceCents"),
            (Box::new(|d| d.ticket_types[1].capacity = 0), "ticketTypes.1.capacity"),
            (Box::new(|d| d.ticket_types[1].capacity = 100_001), "ticketTypes.1.capacity"),
            (Box::new(|d| d.sections[0].name = "A-1".into()), "sections.0.name"),
            (Box::new(|d| d.sections[0].name = "x".repeat(21)), "sections.0.name"),
            (Box::new(|d| d.sections[0].rows = 0), "sections.0.rows"),
            (Box::new(|d| d.sections[0].rows = 101), "sections.0.rows"),
            (Box::new(|d| d.sections[0].seats_per_row = 201), "sections.0.seatsPerRow"),
            (Box::new(|d| d.sections[0].price_cents = 10_000_001), "sections.0.priceCents"),
            (
                Box::new(|d| {
                    d.sections.push(SectionDraft { name: "a".into(), price_cents: 1, rows: 1, seats_per_row: 1 });
                }),
                "sections.1.name",
            ),
        ];
        for (change, field) in cases {
            let mut d = draft();
            change(&mut d);
            assert_eq!(field_of(&d).as_deref(), Some(field));
        }
    }

    #[test]
    fn a_show_has_at_most_two_hundred_thousand_tickets_in_all() {
        let mut d = draft();
        d.ticket_types = vec![
            TicketTypeDraft { name: "A".into(), price_cents: 1, capacity: 100_000 },
            TicketTypeDraft { name: "B".into(), price_cents: 1, capacity: 99_800 },
        ];
        assert_eq!(field_of(&d), None, "exactly 200,000 is allowed");
        d.sections[0].seats_per_row = 21;
        assert_eq!(field_of(&d).as_deref(), Some("sections.0.rows"));
    }

    #[test]
    fn seat_ids_read_and_print_the_same_and_sections_may_have_spaces() {
        let seat: SeatId = "Stalls Left-3-17".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((seat.section.as_str(), seat.row, seat.number), ("Stalls Left", 3, 17));
        assert_eq!(seat.to_string(), "Stalls Left-3-17");
        for bad in ["", "A", "A-1", "-1-2", "A-x-2", "A-1-", "A-1-2222", "A-+1-2"] {
            assert!(bad.parse::<SeatId>().is_err(), "{bad:?}");
        }
        let section = Section {
            name: "A".into(),
            price_cents: Price::from_cents(1).unwrap_or_else(|e| panic!("{e}")),
            rows: 3,
            seats_per_row: 4,
        };
        assert_eq!(section.seat_index(2, 1), Some(4));
        assert_eq!(section.seat_at(4).to_string(), "A-2-1");
        assert_eq!((section.seat_index(0, 1), section.seat_index(4, 1), section.seat_index(1, 5)), (None, None, None));
    }
}
