//! Hooks shared by the pages.

use graphql_client::GraphQLQuery;
use yew::prelude::*;

use crate::state::{Session, SessionAction, User};
use crate::ws;

/// The session shared by every page.
pub type SessionHandle = UseReducerHandle<Session>;

/// The session from the app's context.
#[hook]
pub fn use_session() -> SessionHandle {
    use_context::<SessionHandle>().expect("pages render inside App, which provides the session")
}

/// The signed-in user, once known.
#[hook]
pub fn use_user() -> Option<User> {
    use_session().user.clone()
}

/// Keeps subscription `Q` with `variables` open while the component lives (and reopens it when
/// they change). `on_event` should only dispatch to reducers: it is captured when the
/// subscription opens.
#[hook]
pub fn use_subscription<Q>(variables: Q::Variables, on_event: Callback<ws::Event<Q::ResponseData>>)
where
    Q: GraphQLQuery + 'static,
    Q::Variables: PartialEq + Clone + 'static,
{
    use_effect_with(variables, move |variables| {
        let subscription = ws::subscribe::<Q>(variables.clone(), on_event);
        move || drop(subscription)
    });
}

/// Sets the session's user (after sign-in, sign-up, sign-out or `me`).
pub fn set_user(session: &SessionHandle, user: Option<User>) {
    session.dispatch(SessionAction::Set(user));
}
