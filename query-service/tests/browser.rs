//! The web app in real headless Chromium (Debian's `chromium` driven through `chromedriver`)
//! against the real system: NATS, command-service, projector, PostgreSQL and the gateway serving
//! the bundle built by `scripts/build-web`.
//!
//! Every wait is for a condition on the page, never a fixed sleep. A failed wait saves a
//! screenshot under `<target>/browser-failures/`. With `SCREENSHOTS=<dir>` the tests also save the
//! pictures the README shows.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How long a condition may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

fn web_dir() -> PathBuf {
    let dir =
        std::env::var_os("WEB_DIR").map(PathBuf::from).unwrap_or_else(|| testkit::workspace_root().join("web/dist"));
    assert!(dir.join("index.html").is_file(), "no web bundle at {}: run scripts/build-web", dir.display());
    dir
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| testkit::workspace_root().join("target"))
}

/// A chromedriver of our own (see `testkit::browser`).
type Driver = testkit::browser::ChromeDriver;

async fn chromedriver() -> Driver {
    testkit::browser::chromedriver().await.unwrap_or_else(|e| panic!("{e:#}"))
}

/// One browser (its own profile, so its own cookies) on the app at `base`.
struct Browser {
    client: Client,
    base: String,
    label: String,
}

impl Browser {
    async fn open(driver: &Driver, base: &str, label: &str) -> Self {
        Self::open_with(driver, base, label, true).await
    }

    /// A browser with JavaScript on or off (off: what a crawler or a link preview reads).
    async fn open_with(driver: &Driver, base: &str, label: &str, javascript: bool) -> Self {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "prefs": {"profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 }},
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en-US"
                ]
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("starting chromium through chromedriver: {e}"));
        Self { client, base: base.to_owned(), label: label.to_owned() }
    }

    async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        if let Err(e) = self.client.goto(&url).await {
            self.fail(&format!("opening {url}: {e}")).await;
        }
    }

    /// Saves a screenshot next to the failure and fails the test.
    async fn fail(&self, what: &str) -> ! {
        let dir = target_dir().join("browser-failures");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{}.png", self.label));
        let saved = match self.client.screenshot().await {
            Ok(png) => std::fs::write(&path, png).map(|()| format!("screenshot: {}", path.display())),
            Err(e) => Ok(format!("no screenshot: {e}")),
        };
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        panic!("[{}] {what} (at {url}; {})", self.label, saved.unwrap_or_else(|e| e.to_string()));
    }

    /// Saves a picture for the README when `SCREENSHOTS` names a directory.
    async fn picture(&self, name: &str) {
        let Some(dir) = std::env::var_os("SCREENSHOTS") else { return };
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(PathBuf::from(dir).join(name), png).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The first element matching `css`, once it exists.
    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let started = Instant::now();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return element;
            }
            if started.elapsed() > PATIENCE {
                self.fail(&format!("no element {css}")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        let typed = async {
            input.clear().await?;
            input.send_keys(text).await
        };
        if let Err(e) = typed.await {
            self.fail(&format!("typing into {css}: {e}")).await;
        }
    }

    async fn click(&self, css: &str) {
        let started = Instant::now();
        loop {
            let clicked = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.click().await.is_ok(),
                Err(_) => false,
            };
            if clicked {
                return;
            }
            if started.elapsed() > PATIENCE {
                self.fail(&format!("could not click {css}")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the text of `css` contains `needle`; returns the text.
    async fn wait_text(&self, css: &str, needle: &str) -> String {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
            if started.elapsed() > PATIENCE {
                self.fail(&format!("{css} never said {needle:?} (last: {last:?})")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the address contains `part`; returns the path.
    async fn wait_path(&self, part: &str) -> String {
        let started = Instant::now();
        loop {
            if let Ok(url) = self.client.current_url().await
                && url.path().contains(part)
            {
                return url.path().to_owned();
            }
            if started.elapsed() > PATIENCE {
                self.fail(&format!("never went to {part}")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Marks the loaded page, so [`Browser::same_page`] can tell that it was never reloaded.
    async fn mark_page(&self) {
        self.client.execute("window.__notReloaded = true;", vec![]).await.unwrap_or_else(|e| panic!("{e}"));
    }

    async fn same_page(&self) -> bool {
        let marked = self.client.execute("return window.__notReloaded === true;", vec![]).await;
        marked.ok().and_then(|v| v.as_bool()).unwrap_or(false)
    }

    async fn sign_up(&self, email: &str) {
        self.goto("/signup").await;
        self.fill("#email", email).await;
        self.fill("#password", "correct horse battery").await;
        self.click("button[type=submit]").await;
        self.wait_text("[data-testid=current-user]", email).await;
    }

    /// Lists a ticket through the sell page; returns its id.
    async fn sell(&self, title: &str, price: &str) -> String {
        self.goto("/sell").await;
        self.fill("#title", title).await;
        self.fill("#price", price).await;
        self.click("button[type=submit]").await;
        let path = self.wait_path("/tickets/").await;
        self.wait_text("[data-testid=ticket-title]", title).await;
        path.rsplit('/').next().unwrap_or_default().to_owned()
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }

    /// Runs a Chrome DevTools command (through chromedriver's `goog/cdp/execute`).
    async fn cdp(&self, cmd: &'static str, params: serde_json::Value) -> serde_json::Value {
        match self.client.issue_cmd(testkit::browser::Cdp { cmd, params }).await {
            Ok(answer) => answer,
            Err(e) => self.fail(&format!("DevTools {cmd}: {e}")).await,
        }
    }

    /// After hydration: `css` names one element, the server's own (marked by
    /// [`WATCH_HYDRATION`]), and the app's root was never empty or "Loading" meanwhile.
    async fn kept_the_servers_nodes(&self, css: &str) {
        let script = format!(
            "const t = document.querySelectorAll('{css}'); return t.length === 1 && t[0].__fromServer === true;"
        );
        let kept = self.client.execute(&script, vec![]).await;
        if kept.ok().and_then(|v| v.as_bool()) != Some(true) {
            self.fail(&format!("hydration replaced the server's {css}")).await;
        }
        let flashes = self.client.execute("return window.__flashes;", vec![]).await.unwrap_or_default();
        if flashes != json!([]) {
            self.fail(&format!("the page flashed while the app took over: {flashes}")).await;
        }
    }

    /// Waits until the app marks the page live (hydrated, or rendered in the browser).
    async fn wait_live(&self) {
        let started = Instant::now();
        loop {
            let live = self.client.execute("return document.documentElement.dataset.live === 'true';", vec![]).await;
            if live.ok().and_then(|v| v.as_bool()) == Some(true) {
                return;
            }
            if started.elapsed() > PATIENCE {
                self.fail("the page never became live").await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Installed in a page before anything of it loads: marks the server's nodes once the document is
/// parsed, and from then on notes any moment the app's root is empty or says "Loading" (a flash
/// of empty content while the app takes over).
const WATCH_HYDRATION: &str = r#"
window.__flashes = [];
document.addEventListener('DOMContentLoaded', () => {
  const app = document.getElementById('app');
  if (!app) { window.__flashes.push('no #app'); return; }
  for (const el of app.querySelectorAll('[data-testid], h1')) el.__fromServer = true;
  const check = () => {
    if (app.childElementCount === 0) window.__flashes.push('empty');
    else if (/Loading/.test(app.textContent)) window.__flashes.push('loading');
  };
  check();
  new MutationObserver(check).observe(app, { childList: true, subtree: true, characterData: true });
});
"#;

/// The system with the bundle, served on a loopback port (the fake bank settles asynchronous
/// payments there after a second), and a chromedriver.
async fn system(hold_seconds: u64) -> (common::Stack, String, Driver) {
    system_settling_after(hold_seconds, 1000).await
}

/// [`system`] with the fake bank settling asynchronous payments after `settle_ms`.
async fn system_settling_after(hold_seconds: u64, settle_ms: u64) -> (common::Stack, String, Driver) {
    let dir = web_dir();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let bank = move |c: &mut command_service::config::Config| {
        c.payment_webhook_secret = "whsec_browser_tests".into();
        c.fake_bank_webhook_url = Some(format!("http://{addr}/webhooks/payments"));
        c.fake_bank_settle_ms = settle_ms;
    };
    let stack = common::stack_full(hold_seconds, bank, move |c| c.web_dir = dir).await;
    common::serve_on(listener, &stack);
    (stack, format!("http://{addr}"), chromedriver().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_between_two_browsers_shows_live_on_the_sellers_page() {
    let (_stack, base, driver) = system(300).await;
    let seller = Browser::open(&driver, &base, "sale-seller").await;
    let buyer = Browser::open(&driver, &base, "sale-buyer").await;

    seller.sign_up("seller@example.com").await;
    seller.sell("Aisle seat, Saturday matinee", "32").await;

    // The buyer, in another browser, watches the front page while a new listing arrives.
    buyer.sign_up("buyer@example.com").await;
    buyer.wait_text(".grid", "Aisle seat, Saturday matinee").await;
    buyer.mark_page().await;
    let id = seller.sell("Front row, Friday night", "45.50").await;
    buyer.wait_text(".grid .card:first-child", "Front row, Friday night").await;
    buyer.wait_text(".grid .card:first-child", "$45.50").await;
    assert!(buyer.same_page().await, "the front page was reloaded");
    buyer.picture("tickets.png").await;

    seller.wait_text("[data-testid=ticket-status]", "Available").await;
    seller.wait_text("[data-testid=history]", "Ticket listed").await;
    seller.mark_page().await;
    buyer.click(&format!("[data-ticket='{id}'] a")).await;
    buyer.wait_path(&format!("/tickets/{id}")).await;
    // The page is there (with the button the API's viewerCanHold allows); the history is the
    // seller's and admins' only.
    buyer.find("[data-testid=buy]").await;
    if buyer.client.find(Locator::Css("[data-testid=history]")).await.is_ok() {
        buyer.fail("a buyer was shown the ticket's history").await;
    }
    buyer.click("[data-testid=buy]").await;
    buyer.wait_path("/orders/").await;
    buyer.wait_text("[data-testid=countdown]", "Held for you for").await;

    // The seller's page changes by itself.
    seller.wait_text("[data-testid=ticket-status]", "On hold").await;
    seller.wait_text("[data-testid=history]", "Order placed").await;
    assert!(seller.same_page().await, "the seller's page was reloaded");
    seller.picture("ticket-seller.png").await;
    buyer.picture("order.png").await;

    // Pay with the Visa test card (the default choice).
    buyer.click("[data-testid=pay]").await;
    buyer.wait_text("[data-testid=order-status]", "Paid").await;
    buyer.wait_text(".callout--success", "The ticket is yours").await;
    buyer.picture("order-paid.png").await;
    seller.wait_text("[data-testid=ticket-status]", "Sold").await;
    seller.wait_text("[data-testid=history]", "Payment succeeded").await;
    assert!(seller.same_page().await, "the seller's page was reloaded");

    // The buyer's orders list it as paid.
    buyer.goto("/my/orders").await;
    buyer.wait_text(".rows", "Front row, Friday night").await;
    buyer.wait_text(".rows", "Paid").await;
    seller.close().await;
    buyer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_errors_sit_beside_their_fields_a_declined_card_says_so_and_a_slow_bank_settles_live() {
    let (_stack, base, driver) = system(300).await;
    let seller = Browser::open(&driver, &base, "declined-seller").await;
    let buyer = Browser::open(&driver, &base, "declined-buyer").await;

    seller.sign_up("lister@example.com").await;
    // The API's error for an empty title appears beside the title.
    seller.goto("/sell").await;
    seller.fill("#price", "20").await;
    seller.click("button[type=submit]").await;
    let error = seller.wait_text("#title-error", "itle").await;
    assert!(
        seller.find("#title").await.attr("aria-invalid").await.ok().flatten().as_deref() == Some("true"),
        "{error}"
    );
    // A price that is not one is caught beside the price.
    seller.fill("#title", "Balcony seat").await;
    seller.fill("#price", "twenty").await;
    seller.click("button[type=submit]").await;
    seller.wait_text("#price-error", "price").await;
    seller.picture("sell-errors.png").await;
    let id = seller.sell("Balcony seat", "20").await;

    buyer.sign_up("unlucky@example.com").await;
    buyer.goto(&format!("/tickets/{id}")).await;
    buyer.click("[data-testid=buy]").await;
    buyer.wait_path("/orders/").await;
    buyer.click("input[value=tok_chargeDeclined]").await;
    buyer.click("[data-testid=pay]").await;
    buyer.wait_text(".alert--error", "Your card was declined").await;
    // Nothing changed: the order is still held and can be paid with another card.
    buyer.wait_text("[data-testid=order-status]", "Held for you").await;
    buyer.picture("order-declined.png").await;
    // The asynchronous bank: the payment waits, then the page turns to paid by itself.
    buyer.mark_page().await;
    buyer.click("input[value=tok_async]").await;
    buyer.click("[data-testid=pay]").await;
    buyer.wait_text("[data-testid=order-status]", "Payment in progress").await;
    buyer.wait_text("[data-testid=order-status]", "Paid").await;
    assert!(buyer.same_page().await, "the order page was reloaded");
    seller.close().await;
    buyer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_hold_turns_the_order_page_to_cancelled_without_reload() {
    let (_stack, base, driver) = system(4).await;
    let seller = Browser::open(&driver, &base, "expiry-seller").await;
    let buyer = Browser::open(&driver, &base, "expiry-buyer").await;
    seller.sign_up("patient@example.com").await;
    let id = seller.sell("Last-minute seat", "12").await;

    buyer.sign_up("slow@example.com").await;
    buyer.goto(&format!("/tickets/{id}")).await;
    buyer.click("[data-testid=buy]").await;
    buyer.wait_path("/orders/").await;
    // The seller's page shows the hold first (it said "Available" before: waiting for that alone
    // would pass without any change arriving).
    seller.wait_text("[data-testid=ticket-status]", "On hold").await;
    buyer.wait_text("[data-testid=countdown]", "Held for you for 0:0").await;
    buyer.mark_page().await;
    buyer.wait_text("[data-testid=order-status]", "Cancelled").await;
    buyer.wait_text(".callout--muted", "The hold expired before payment").await;
    assert!(buyer.same_page().await, "the order page was reloaded");
    // The ticket is available again, on the seller's page too.
    seller.wait_text("[data-testid=ticket-status]", "Available").await;
    seller.close().await;
    buyer.close().await;
}

/// The buttons come from the API's `viewerCan…` fields, which ask the domain. The web app used to
/// offer cancelling only a `CREATED` order, while the domain also lets a buyer cancel one whose
/// payment is under way (the money, if it arrives, goes back): this test failed there, with no
/// cancel button on a "Payment in progress" page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_cancels_while_the_bank_is_still_confirming_and_the_late_money_goes_back() {
    // The bank confirms 12 s after the charge: time to see the payment under way and cancel.
    let (_stack, base, driver) = system_settling_after(300, 12_000).await;
    let seller = Browser::open(&driver, &base, "cancel-seller").await;
    let buyer = Browser::open(&driver, &base, "cancel-buyer").await;
    seller.sign_up("changed-plans@example.com").await;
    let id = seller.sell("Stalls, Sunday", "18").await;

    buyer.sign_up("second-thoughts@example.com").await;
    buyer.goto(&format!("/tickets/{id}")).await;
    buyer.click("[data-testid=buy]").await;
    buyer.wait_path("/orders/").await;
    seller.wait_text("[data-testid=ticket-status]", "On hold").await;
    buyer.find("[data-testid=cancel]").await;
    buyer.click("input[value=tok_async]").await;
    buyer.click("[data-testid=pay]").await;
    buyer.wait_text("[data-testid=order-status]", "Payment in progress").await;
    // The cancel button stays while the payment is under way.
    buyer.click("[data-testid=cancel]").await;
    buyer.wait_text("[data-testid=order-status]", "Cancelled").await;
    seller.wait_text("[data-testid=ticket-status]", "Available").await;
    // The bank confirms afterwards: the money is refunded, and the page says so by itself.
    buyer.wait_text(".callout--muted", "refunded").await;
    if buyer.client.find(Locator::Css("[data-testid=cancel]")).await.is_ok() {
        buyer.fail("a cancelled order still offers to cancel").await;
    }
    seller.close().await;
    buyer.close().await;
}

impl Browser {
    /// Waits until attribute `attr` of `css` contains `needle`.
    async fn wait_attr(&self, css: &str, attr: &str, needle: &str) {
        let started = Instant::now();
        let mut last = None;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(value) = element.attr(attr).await
            {
                if value.as_deref().is_some_and(|v| v.contains(needle)) {
                    return;
                }
                last = value;
            }
            if started.elapsed() > PATIENCE {
                self.fail(&format!("{css} never had {attr} with {needle:?} (last: {last:?})")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the text of `css` is exactly `text`.
    async fn wait_exact(&self, css: &str, text: &str) {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(seen) = element.text().await
            {
                if seen.trim() == text {
                    return;
                }
                last = seen;
            }
            if started.elapsed() > PATIENCE {
                self.fail(&format!("{css} never said exactly {text:?} (last: {last:?})")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `data-seat` of the element that has the keyboard focus.
    async fn focused_seat(&self) -> Option<String> {
        let seat = self.client.execute("return document.activeElement.getAttribute('data-seat');", vec![]).await;
        seat.ok().and_then(|v| v.as_str().map(str::to_owned))
    }

    async fn attr(&self, css: &str, attr: &str) -> Option<String> {
        self.find(css).await.attr(attr).await.ok().flatten()
    }

    /// Sends `keys` to the element `css` (it takes the focus).
    async fn keys(&self, css: &str, keys: &str) {
        if let Err(e) = self.find(css).await.send_keys(keys).await {
            self.fail(&format!("typing into {css}: {e}")).await;
        }
    }
}

fn seat(id: &str) -> String {
    format!("[data-seat='{id}']")
}

/// An organiser puts an event on sale with a tier and a generated seat map; two buyers race for
/// its seats in two browsers. The second sees the first's seats turn held without a reload and
/// cannot take them; asking for more tickets than are left is refused with a message naming the
/// tier and what is left, and holds nothing; the organiser's sales table follows live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_race_for_an_events_seats_and_the_organiser_watches_it_sell() {
    let (_stack, base, driver) = system(300).await;
    let organiser = Browser::open(&driver, &base, "event-organiser").await;
    organiser.sign_up("organiser@example.com").await;
    organiser.goto("/my/events/new").await;
    organiser.fill("#title", "Chamber Quartet").await;
    organiser.fill("#venue", "Wigmore Hall").await;
    organiser.fill("#tier-0-name", "Standing").await;
    organiser.fill("#tier-0-price", "30").await;
    organiser.fill("#tier-0-capacity", "0").await;
    organiser.fill("#gen-sections", "1").await;
    organiser.fill("#gen-rows", "2").await;
    organiser.fill("#gen-seats", "4").await;
    organiser.fill("#gen-price", "45").await;
    organiser.click("[data-testid=generate]").await;
    organiser.wait_text("[data-testid=capacity]", "8 tickets in all").await;
    let name = organiser.find("#section-0-name").await.prop("value").await.ok().flatten();
    assert_eq!(name.as_deref(), Some("A"), "the generated section's name");
    // The API's error for the tier's capacity sits beside that tier's field (its path names it).
    organiser.click("button[type=submit]").await;
    organiser.wait_text("#tier-0-capacity-error", "apacity").await;
    organiser.fill("#tier-0-capacity", "3").await;
    organiser.wait_text("[data-testid=capacity]", "11 tickets in all").await;
    organiser.click("button[type=submit]").await;
    organiser.wait_text("[data-testid=event-title]", "Chamber Quartet").await;
    let path = organiser.wait_path("/events/").await;
    assert!(!path.starts_with("/my/"), "still on the form: {path}");
    let id = path.rsplit('/').next().unwrap_or_default().to_owned();
    organiser.wait_text("[data-testid=sales]", "Standing").await;
    organiser.mark_page().await;

    let first = Browser::open(&driver, &base, "event-first").await;
    let second = Browser::open(&driver, &base, "event-second").await;
    first.sign_up("quick@example.com").await;
    second.sign_up("slower@example.com").await;
    // Both find it on the events page.
    second.goto("/events").await;
    second.click(&format!("[data-event='{id}'] a")).await;
    second.wait_path(&format!("/events/{id}")).await;
    first.goto(&format!("/events/{id}")).await;
    second.mark_page().await;

    // The second buyer chooses a seat; the first holds it and the one beside it.
    second.click(&seat("A-1-2")).await;
    second.wait_attr(&seat("A-1-2"), "aria-checked", "true").await;
    second.wait_text("[data-testid=summary]", "Seat A-1-2").await;
    first.click(&seat("A-1-1")).await;
    first.click(&seat("A-1-2")).await;
    first.wait_text("[data-testid=total]", "$90.00").await;
    first.click("[data-testid=hold]").await;
    first.wait_path("/orders/").await;
    first.wait_text("[data-testid=countdown]", "Held for you for").await;
    first.wait_text(".items", "Seat A-1-1").await;

    // The second browser sees both turn held, without a reload; its chosen seat is gone from its
    // choice, with a word why, and a held seat cannot be taken.
    second.wait_attr(&seat("A-1-1"), "class", "seat--held").await;
    second.wait_attr(&seat("A-1-2"), "class", "seat--held").await;
    second.wait_text(".alert--info", "Just taken by someone else: seat A-1-2").await;
    second.click(&seat("A-1-1")).await;
    assert_eq!(second.attr(&seat("A-1-1"), "aria-checked").await.as_deref(), Some("false"));
    assert_eq!(second.attr(&seat("A-1-1"), "aria-disabled").await.as_deref(), Some("true"));
    assert!(second.attr("[data-testid=hold]", "disabled").await.is_some(), "nothing chosen, yet it may hold");
    assert!(second.same_page().await, "the second buyer's page was reloaded");
    second.picture("event-seats.png").await;

    // The keyboard: one seat of the map is in the tab order (the last one focused); Space picks
    // the focused seat, the arrow keys move along the row, and a held seat cannot be picked.
    let tabbable = second.client.find_all(Locator::Css("[data-section='A'] [data-seat][tabindex='0']")).await;
    assert_eq!(tabbable.map(|t| t.len()).ok(), Some(1), "one seat of the section in the tab order");
    second.keys(&seat("A-1-3"), " ").await;
    second.wait_attr(&seat("A-1-3"), "aria-checked", "true").await;
    let (right, left): (char, char) = (fantoccini::key::Key::Right.into(), fantoccini::key::Key::Left.into());
    second.keys(&seat("A-1-3"), &format!("{right} ")).await;
    second.wait_attr(&seat("A-1-4"), "aria-checked", "true").await;
    assert_eq!(second.focused_seat().await.as_deref(), Some("A-1-4"));
    second.keys(&seat("A-1-4"), &format!("{left}{left}{left} ")).await;
    assert_eq!(second.focused_seat().await.as_deref(), Some("A-1-1"));
    assert_eq!(second.attr(&seat("A-1-1"), "aria-checked").await.as_deref(), Some("false"), "a held seat was picked");

    // More standing tickets than there are: refused by name, and nothing at all is held.
    second.fill("#qty-0", "4").await;
    second.wait_text("[data-testid=hold]", "Hold 6 tickets").await;
    second.click("[data-testid=hold]").await;
    second.wait_text(".alert--error", "Not available any more: Standing (only 3 left)").await;
    second.wait_text(".alert--error", "Nothing was held").await;
    organiser.wait_exact("[data-testid=held]", "2").await;
    // Within what is left, it holds: the order lists every item.
    second.fill("#qty-0", "2").await;
    second.wait_text("[data-testid=hold]", "Hold 4 tickets for $150.00").await;
    second.click("[data-testid=hold]").await;
    second.wait_path("/orders/").await;
    second.wait_text(".items", "Seat A-1-4").await;
    second.wait_text(".items", "Standing").await;

    // The organiser's page followed all of it by itself: 2 seats, then 2 seats and 2 standing
    // tickets (had the refused request held anything, more would be held and fewer left).
    organiser.wait_exact("[data-testid=held]", "6").await;
    organiser.wait_exact("[data-testid=event-available]", "5 left").await;
    assert!(organiser.same_page().await, "the organiser's page was reloaded");
    organiser.picture("event-sales.png").await;
    organiser.close().await;
    first.close().await;
    second.close().await;
}

/// The public pages arrive rendered: with JavaScript off, Chromium shows a ticket's title, price
/// and date, the lists, and an event's prices, date and seat availability. With it on, the app
/// hydrates the server's page in place (the same nodes, never an empty or "Loading" moment) and the
/// page is live: a hold made elsewhere shows up without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rendered_pages_read_without_javascript_and_come_alive_in_place() {
    let (stack, base, driver) = system(300).await;
    let mut seller = common::Client::default();
    let signed = seller
        .gql(
            &stack,
            "mutation { signUp(email: \"ssr-seller@example.com\", password: \"correct horse\") { id } }",
            json!({}),
        )
        .await;
    assert!(signed["errors"].is_null(), "{signed}");
    let created = seller
        .gql(&stack, "mutation { createTicket(title: \"Balcony, opening night\", priceCents: 6400) { id } }", json!({}))
        .await;
    let ticket = created["data"]["createTicket"]["id"].as_str().unwrap_or_default().to_owned();
    let other = seller
        .gql(&stack, "mutation { createTicket(title: \"Stalls, Sunday matinée\", priceCents: 3100) { id } }", json!({}))
        .await;
    assert!(other["errors"].is_null(), "{other}");
    let event = seller
        .gql(
            &stack,
            "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }",
            json!({"input": {"title": "Spring Festival", "venue": "Riverside Park", "startsAt": "2031-05-02T18:00:00Z",
                "ticketTypes": [{"name": "Day pass", "priceCents": 3500, "capacity": 10}],
                "sections": [{"name": "A", "priceCents": 8000, "rows": 1, "seatsPerRow": 4}]}}),
        )
        .await;
    let event = event["data"]["createEvent"]["id"].as_str().unwrap_or_else(|| panic!("{event}")).to_owned();

    // JavaScript off: the pages read as they are.
    let reader = Browser::open_with(&driver, &base, "ssr-no-js", false).await;
    reader.goto(&format!("/tickets/{ticket}")).await;
    reader.find("noscript p").await; // proof that scripts are off: the noscript text is shown
    reader.wait_text("[data-testid=ticket-title]", "Balcony, opening night").await;
    reader.wait_text(".detail", "$64.00").await;
    reader.wait_text(".detail", "Listed ").await;
    reader.wait_text("[data-testid=ticket-status]", "Available").await;
    reader.goto("/").await;
    reader.wait_text(".grid", "Balcony, opening night").await;
    reader.goto("/events").await;
    reader.wait_text("[data-testid=events]", "Spring Festival").await;
    reader.wait_text("[data-testid=events]", "2 May 2031, 18:00 UTC").await;
    reader.goto(&format!("/events/{event}")).await;
    reader.wait_text("[data-testid=event-title]", "Spring Festival").await;
    reader.wait_text("#main", "Riverside Park").await;
    reader.wait_text("#main", "Day pass").await;
    reader.wait_text("#main", "$35.00").await;
    reader.wait_text("[data-section='A']", "4 of 4 available").await;
    assert_eq!(reader.attr(&seat("A-1-3"), "class").await.as_deref(), Some("seat seat--available"));
    reader.goto("/?search=balcony").await;
    reader.wait_text(".grid", "Balcony, opening night").await;
    assert_eq!(reader.find("#ticket-search").await.prop("value").await.ok().flatten().as_deref(), Some("balcony"));
    reader.close().await;

    // JavaScript on: hydrated in place, then live.
    let viewer = Browser::open(&driver, &base, "ssr-live").await;
    viewer.cdp("Page.enable", json!({})).await;
    viewer.cdp("Page.addScriptToEvaluateOnNewDocument", json!({"source": WATCH_HYDRATION})).await;
    viewer.goto(&format!("/events/{event}")).await;
    viewer.wait_live().await;
    viewer.mark_page().await;
    viewer.kept_the_servers_nodes("[data-testid=event-title]").await;
    // The stylesheet is inside the page, allowed by its hash (a refused one has no `sheet`).
    let styled = viewer
        .client
        .execute(
            "const s = document.querySelector('head style'); return !!(s && s.sheet && s.sheet.cssRules.length > 10);",
            vec![],
        )
        .await;
    assert_eq!(styled.ok().and_then(|v| v.as_bool()), Some(true), "the inline stylesheet was refused or is missing");
    let mut buyer = common::Client::default();
    let signed = buyer
        .gql(
            &stack,
            "mutation { signUp(email: \"ssr-buyer@example.com\", password: \"correct horse\") { id } }",
            json!({}),
        )
        .await;
    assert!(signed["errors"].is_null(), "{signed}");
    let hold = buyer
        .gql(
            &stack,
            "mutation($e: ID!) { createEventOrder(eventId: $e, seats: [\"A-1-3\"]) { id } }",
            json!({"e": event}),
        )
        .await;
    assert!(hold["errors"].is_null(), "{hold}");
    viewer.wait_attr(&seat("A-1-3"), "class", "seat--held").await;
    viewer.wait_text("[data-section='A']", "3 of 4 available").await;

    viewer.goto(&format!("/tickets/{ticket}")).await;
    viewer.wait_live().await;
    viewer.mark_page().await;
    viewer.kept_the_servers_nodes("[data-testid=ticket-title]").await;
    let order = buyer.gql(&stack, "mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket})).await;
    assert!(order["errors"].is_null(), "{order}");
    viewer.wait_text("[data-testid=ticket-status]", "On hold").await;
    assert!(viewer.same_page().await, "the page was reloaded");

    // The search box: results as one types (accents aside), the search in the address, in place.
    viewer.goto("/").await;
    viewer.wait_live().await;
    viewer.wait_text(".grid", "Stalls, Sunday matinée").await;
    viewer.mark_page().await;
    viewer.fill("#ticket-search", "matin").await;
    viewer.wait_text("#main", "Stalls, Sunday matinée").await;
    wait_until(&viewer, "the search in the address", || async {
        viewer.client.current_url().await.ok().and_then(|u| u.query().map(str::to_owned)).as_deref()
            == Some("search=matin")
    })
    .await;
    wait_until(&viewer, "only what the search finds", || async {
        let grid = viewer.client.find(Locator::Css("[data-testid=tickets]")).await;
        let text = match grid {
            Ok(grid) => grid.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.contains("Stalls, Sunday matinée") && !text.contains("Balcony")
    })
    .await;
    viewer.fill("#ticket-search", "opera").await;
    viewer.wait_text("#main", "No tickets match your search.").await;
    assert!(viewer.same_page().await, "searching reloaded the page");
    viewer.close().await;
}

/// Waits (up to the usual patience) until `condition` holds.
async fn wait_until<F, Fut>(browser: &Browser, what: &str, condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        if started.elapsed() > PATIENCE {
            browser.fail(&format!("never: {what}")).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
