//! Roles: every account is a `USER`; addresses in `ADMIN_EMAILS` are also `ADMIN`.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_account_is_a_user_and_admins_are_admins_too() {
        assert_eq!(roles(false), [Role::User]);
        assert_eq!(roles(true), [Role::User, Role::Admin]);
        assert_eq!(serde_json::to_string(&roles(true)).ok().as_deref(), Some(r#"["USER","ADMIN"]"#));
    }
}
