//! Roles: every account is a `USER`; addresses in `ADMIN_EMAILS` are also `ADMIN`.

use serde::{Deserialize, Deserializer, Serialize};

/// A role an account holds, as the API and session tokens spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Every signed-up account.
    User,
    /// An administrator (its address is in `ADMIN_EMAILS`).
    Admin,
}

/// The roles of an account: `USER`, and `ADMIN` too when `is_admin`.
pub fn roles(is_admin: bool) -> Vec<Role> {
    if is_admin { vec![Role::User, Role::Admin] } else { vec![Role::User] }
}

/// Reads a list of roles, skipping names this release does not know (a newer one may add a
/// role, and a token or reply may come from it): an unknown role grants nothing. For
/// `#[serde(deserialize_with = "command_api::known_roles")]`.
///
/// # Errors
/// The value is not a list of strings.
pub fn known_roles<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Role>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    Ok(names.into_iter().filter_map(|name| serde_json::from_value(serde_json::Value::String(name)).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_account_is_a_user_and_admins_are_admins_too() {
        assert_eq!(roles(false), [Role::User]);
        assert_eq!(roles(true), [Role::User, Role::Admin]);
        assert_eq!(serde_json::to_string(&roles(true)).ok().as_deref(), Some(r#"["USER","ADMIN"]"#));
    }

    #[test]
    fn a_role_this_release_does_not_know_grants_nothing_and_breaks_nothing() {
        #[derive(Deserialize)]
        struct Holder {
            #[serde(deserialize_with = "known_roles")]
            roles: Vec<Role>,
        }
        let read = serde_json::from_str::<Holder>(r#"{"roles": ["USER", "AUDITOR", "ADMIN"]}"#).map(|h| h.roles);
        assert_eq!(read.ok(), Some(vec![Role::User, Role::Admin]));
        assert!(serde_json::from_str::<Holder>(r#"{"roles": "ADMIN"}"#).is_err());
    }
}
