use yew::prelude::*;
use yew_router::prelude::*;

use crate::api;
use crate::app::Route;
use crate::graphql::{SignOut, sign_out};
use crate::hooks::{set_user, use_session};

/// The top bar: where to go, and who is signed in.
#[function_component(Header)]
pub fn header() -> Html {
    let session = use_session();
    let navigator = use_navigator();
    let sign_out = {
        let session = session.clone();
        Callback::from(move |_: MouseEvent| {
            let session = session.clone();
            let navigator = navigator.clone();
            wasm_bindgen_futures::spawn_local(async move {
                // Signed out locally either way: the cookie is cleared by the server's answer.
                let _ = api::request::<SignOut>(sign_out::Variables).await;
                set_user(&session, None);
                if let Some(navigator) = navigator {
                    navigator.push(&Route::Tickets);
                }
            });
        })
    };
    html! {
        <header class="topbar">
            <a class="skip-link" href="#main">{ "Skip to content" }</a>
            <nav class="topbar__inner" aria-label="Main">
                <Link<Route> to={Route::Tickets} classes="brand">
                    <span class="brand__mark" aria-hidden="true">{ "◆" }</span>{ " Tickets" }
                </Link<Route>>
                <ul class="topbar__links">
                    <li><Link<Route> to={Route::Tickets}>{ "Browse" }</Link<Route>></li>
                    <li><Link<Route> to={Route::Events}>{ "Events" }</Link<Route>></li>
                    if session.user.is_some() {
                        <li><Link<Route> to={Route::Sell}>{ "Sell" }</Link<Route>></li>
                        <li><Link<Route> to={Route::MyTickets}>{ "My tickets" }</Link<Route>></li>
                        <li><Link<Route> to={Route::MyOrders}>{ "My orders" }</Link<Route>></li>
                        <li><Link<Route> to={Route::MyEvents}>{ "My events" }</Link<Route>></li>
                    }
                </ul>
                <div class="topbar__user">
                    if let Some(user) = &session.user {
                        <span class="topbar__email" data-testid="current-user">{ user.email.clone() }</span>
                        if user.admin {
                            <span class="badge badge--admin">{ "Admin" }</span>
                        }
                        <button class="button button--quiet" onclick={sign_out}>{ "Sign out" }</button>
                    } else if session.known {
                        <Link<Route> to={Route::SignIn} classes="button button--quiet">{ "Sign in" }</Link<Route>>
                        <Link<Route> to={Route::SignUp} classes="button">{ "Sign up" }</Link<Route>>
                    }
                </div>
            </nav>
        </header>
    }
}
