//! Hooks shared by the pages.

use graphql_client::GraphQLQuery;
use yew::prelude::*;

use crate::state::{Live, LiveAction, Session, SessionAction, User, Versioned};
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

/// One ticket, order or event kept live: query `Q` loads it (again whenever subscription `S`
/// (re)connects, as a dropped socket may have missed changes) and every push of `S` replaces it
/// when it is newer. `loaded` and `pushed` pick the value out of the answers; a failed load goes
/// to `on_error`.
#[hook]
pub fn use_live<Q, S, T>(
    query: Q::Variables,
    subscription: S::Variables,
    loaded: fn(Q::ResponseData) -> Option<T>,
    pushed: fn(S::ResponseData) -> T,
    on_error: Callback<crate::api::ApiError>,
) -> UseReducerHandle<Live<T>>
where
    Q: GraphQLQuery + 'static,
    S: GraphQLQuery + 'static,
    Q::Variables: PartialEq + Clone + serde::Serialize + 'static,
    S::Variables: PartialEq + Clone + 'static,
    T: Versioned + Clone + 'static,
{
    // A server-rendered page came with the answer: the first render shows it (as the server's
    // did), and the subscription's first connect loads it again.
    let preloaded = crate::preload::use_preloaded();
    let had_answer = use_mut_ref(|| false);
    let live = use_reducer(|| match preloaded.take::<Q>(&query) {
        Some(data) => {
            *had_answer.borrow_mut() = true;
            match loaded(data) {
                Some(value) => Live::Ready(value),
                None => Live::Missing,
            }
        }
        None => Live::<T>::Loading,
    });
    let load = {
        let (dispatch, variables) = (live.dispatcher(), query.clone());
        move || {
            let (dispatch, variables, on_error) = (dispatch.clone(), variables.clone(), on_error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match crate::api::request::<Q>(variables).await {
                    Ok(data) => dispatch.dispatch(LiveAction::Loaded(loaded(data))),
                    Err(error) => on_error.emit(error),
                }
            });
        }
    };
    {
        let (load, had_answer) = (load.clone(), had_answer.clone());
        use_effect_with(query, move |_| {
            // Only the first load can be answered by the page; a later id loads as usual.
            if !std::mem::take(&mut *had_answer.borrow_mut()) {
                load();
            }
        });
    }
    let dispatch = live.dispatcher();
    use_subscription::<S>(
        subscription,
        Callback::from(move |event| match event {
            ws::Event::Connected => load(),
            ws::Event::Data(data) => dispatch.dispatch(LiveAction::Changed(pushed(data))),
            ws::Event::Refused(_) => {}
        }),
    );
    live
}
