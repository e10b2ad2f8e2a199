//! Ticket titles.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 120;

/// A ticket title: trimmed, 1..=120 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Title(String);

/// Why a title was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TitleError {
    /// Nothing left after trimming.
    #[error("title is required")]
    Empty,
    /// More than [`MAX_TITLE_CHARS`] characters.
    #[error("title must be at most 120 characters")]
    TooLong,
    /// It holds a control character (a NUL, a line break, a tab…): titles are one line of text.
    #[error("title must not contain control characters")]
    ControlCharacter,
}

impl Title {
    /// Trims and checks a title.
    ///
    /// # Errors
    /// [`TitleError`] when the trimmed title is empty or longer than 120 characters.
    pub fn parse(raw: &str) -> Result<Self, TitleError> {
        let title = raw.trim();
        match title.chars().count() {
            0 => Err(TitleError::Empty),
            n if n > MAX_TITLE_CHARS => Err(TitleError::TooLong),
            _ if title.chars().any(char::is_control) => Err(TitleError::ControlCharacter),
            _ => Ok(Self(title.to_owned())),
        }
    }

    /// The title text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads a stored title as it was written. Stored events are facts checked under the rules of
/// their day; today's rules apply to new input only ([`Title::parse`]), so a rule made stricter
/// later (control characters were once allowed) never makes a stored event unreadable.
impl<'de> Deserialize<'de> for Title {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_trimmed() {
        assert_eq!(Title::parse("  Opera night ").map(|t| t.0), Ok("Opera night".into()));
    }

    #[test]
    fn a_blank_title_is_refused() {
        assert_eq!(Title::parse(" \t "), Err(TitleError::Empty));
    }

    #[test]
    fn a_title_counts_characters_not_bytes() {
        assert!(Title::parse(&"é".repeat(120)).is_ok());
        assert_eq!(Title::parse(&"é".repeat(121)), Err(TitleError::TooLong));
    }

    #[test]
    fn control_characters_inside_are_refused_and_around_it_are_trimmed() {
        for inside in ["a\u{0}b", "two\nlines", "tab\there", "bell\u{7}"] {
            assert_eq!(Title::parse(inside), Err(TitleError::ControlCharacter), "{inside:?}");
        }
        assert_eq!(Title::parse("\n Opera \t").map(|t| t.to_string()), Ok("Opera".to_owned()));
        assert!(Title::parse("emoji 🎫 and RTL \u{202e}txet").is_ok(), "format characters are not control characters");
    }
}
