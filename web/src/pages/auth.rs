use yew::prelude::*;
use yew_router::prelude::*;

use super::Next;
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::components::{Alert, Field};
use crate::graphql::{SignIn as SignInMutation, SignUp as SignUpMutation, sign_in, sign_up};
use crate::hooks::{set_user, use_session};
use crate::state::User;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    SignIn,
    SignUp,
}

/// Sign in with email and password.
#[function_component(SignIn)]
pub fn sign_in() -> Html {
    html! { <AuthForm mode={Mode::SignIn} /> }
}

/// Create an account.
#[function_component(SignUp)]
pub fn sign_up() -> Html {
    html! { <AuthForm mode={Mode::SignUp} /> }
}

#[derive(Properties, PartialEq)]
struct AuthProps {
    mode: Mode,
}

/// Where to go after signing in: `?next=` when it names a page of this app, else the tickets.
fn destination(location: Option<Location>) -> Route {
    location
        .and_then(|l| l.query::<Next>().ok())
        .and_then(|n| n.next)
        .filter(|path| path.starts_with('/') && !path.starts_with("//"))
        .and_then(|path| Route::recognize(&path))
        .filter(|route| *route != Route::NotFound)
        .unwrap_or(Route::Tickets)
}

#[function_component(AuthForm)]
fn auth_form(props: &AuthProps) -> Html {
    let session = use_session();
    let email = use_state(String::new);
    let password = use_state(String::new);
    let error = use_state(|| None::<ApiError>);
    let busy = use_state(|| false);
    let navigator = use_navigator();
    let location = use_location();
    let mode = props.mode;
    let onsubmit = {
        let (email, password, error, busy) = (email.clone(), password.clone(), error.clone(), busy.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let (email, password) = ((*email).clone(), (*password).clone());
            let (error, busy, session, navigator) = (error.clone(), busy.clone(), session.clone(), navigator.clone());
            let to = destination(location.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                let result: Result<User, ApiError> = match mode {
                    Mode::SignIn => api::request::<SignInMutation>(sign_in::Variables { email, password })
                        .await
                        .map(|d| d.sign_in.into()),
                    Mode::SignUp => api::request::<SignUpMutation>(sign_up::Variables { email, password })
                        .await
                        .map(|d| d.sign_up.into()),
                };
                busy.set(false);
                match result {
                    Ok(user) => {
                        set_user(&session, Some(user));
                        if let Some(navigator) = navigator {
                            navigator.push(&to);
                        }
                    }
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    let field_error = |field: &str| error.as_ref().and_then(|e| e.for_field(field));
    let general = error.as_ref().filter(|e| e.field.is_none()).map(|e| match (mode, e.code.as_str()) {
        (Mode::SignIn, "UNAUTHENTICATED") => "That email and password do not match an account.".to_string(),
        (Mode::SignUp, "CONFLICT") => "An account with this email already exists. Sign in instead?".to_string(),
        _ => e.user_message(),
    });
    let (title, button, busy_label) = match mode {
        Mode::SignIn => ("Sign in", "Sign in", "Signing in…"),
        Mode::SignUp => ("Create your account", "Create account", "Creating…"),
    };
    html! {
        <section class="panel panel--narrow">
            <h1>{ title }</h1>
            <form class="form" {onsubmit} novalidate=true>
                <Field id="email" label="Email" kind="email" autocomplete="email" value={(*email).clone()}
                    oninput={Callback::from({ let email = email.clone(); move |v| email.set(v) })}
                    error={field_error("email")} />
                <Field id="password" label="Password" kind="password"
                    autocomplete={if mode == Mode::SignUp { "new-password" } else { "current-password" }}
                    hint={(mode == Mode::SignUp).then_some(AttrValue::Static("At least 8 characters"))}
                    value={(*password).clone()}
                    oninput={Callback::from({ let password = password.clone(); move |v| password.set(v) })}
                    error={field_error("password")} />
                if let Some(message) = general {
                    <Alert message={message} />
                }
                <button class="button button--large" type="submit" disabled={*busy}>{ if *busy { busy_label } else { button } }</button>
            </form>
            <p class="muted">
                if mode == Mode::SignIn {
                    { "New here? " }<Link<Route> to={Route::SignUp}>{ "Create an account" }</Link<Route>>
                } else {
                    { "Have an account? " }<Link<Route> to={Route::SignIn}>{ "Sign in" }</Link<Route>>
                }
            </p>
        </section>
    }
}
