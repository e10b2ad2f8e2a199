//! `ticketing seed`: fills a running system with demo users, tickets, holds and sales through
//! its public GraphQL API, as real clients would, so a newcomer sees a living marketplace.
//!
//! Running it again adds more tickets; users that exist are signed in instead.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The demo accounts' password.
pub const PASSWORD: &str = "demo-password";

const TITLES: [(&str, i64); 24] = [
    ("Front row, Friday night", 8_900),
    ("Balcony seat, Saturday matinee", 4_250),
    ("Jazz at the Riverside, table for one", 3_500),
    ("Cup final, north stand", 12_000),
    ("Opera: La Bohème, stalls", 9_500),
    ("Indie night at The Cellar", 1_800),
    ("Stand-up special, aisle seat", 2_900),
    ("Marathon expo day pass", 1_500),
    ("Symphony No. 9, circle", 6_400),
    ("Festival weekend wristband", 21_000),
    ("Basketball, courtside row C", 15_500),
    ("Film premiere, gala screening", 7_500),
    ("Poetry slam, general admission", 1_200),
    ("Tech conference, day two", 19_900),
    ("Ballet: Swan Lake, box seat", 11_000),
    ("Comedy club, Thursday late show", 2_200),
    ("Rock arena, floor standing", 6_900),
    ("Chamber music at the old church", 2_500),
    ("Football derby, away end", 5_500),
    ("Musical theatre, upper circle", 4_800),
    ("Science museum late, adults only", 2_000),
    ("Food festival tasting pass", 3_900),
    ("Electronic night, early entry", 2_800),
    ("Tennis quarter-final, centre court", 18_500),
];

/// A signed-in demo user.
struct Client {
    http: reqwest::Client,
    url: String,
    cookie: Option<String>,
    email: String,
}

impl Client {
    async fn gql(&mut self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let mut request = self.http.post(&self.url).json(&json!({"query": query, "variables": variables}));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("session={cookie}"));
        }
        let response = request.send().await.with_context(|| format!("calling {}", self.url))?;
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap_or_default();
            if let Some(token) = value.split(';').next().and_then(|kv| kv.strip_prefix("session=")) {
                self.cookie = (!token.is_empty()).then(|| token.to_owned());
            }
        }
        let body: Value = response.json().await.context("reading the API's answer")?;
        if let Some(error) = body["errors"].get(0) {
            let code = error["extensions"]["code"].as_str().unwrap_or("ERROR");
            bail!("{code}: {}", error["message"].as_str().unwrap_or_default());
        }
        Ok(body["data"].clone())
    }

    /// Signs up, or signs in when the account exists.
    async fn join(http: &reqwest::Client, url: &str, email: &str) -> anyhow::Result<Self> {
        let mut client = Self { http: http.clone(), url: url.to_owned(), cookie: None, email: email.to_owned() };
        let variables = json!({"e": email, "p": PASSWORD});
        let signed_up = client
            .gql("mutation($e: String!, $p: String!) { signUp(email: $e, password: $p) { id } }", variables.clone())
            .await;
        if let Err(error) = signed_up {
            if !error.to_string().starts_with("CONFLICT") {
                return Err(error.context(format!("signing up {email}")));
            }
            client
                .gql("mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { id } }", variables)
                .await
                .with_context(|| format!("signing in {email} (is its password still {PASSWORD:?}?)"))?;
        }
        Ok(client)
    }
}

/// What a seeding run made.
#[derive(Debug, Default)]
pub struct Seeded {
    /// Accounts signed up or in.
    pub users: usize,
    /// Tickets listed.
    pub tickets: usize,
    /// Orders paid (tickets sold).
    pub sold: usize,
    /// Orders left on hold.
    pub held: usize,
    /// Payments left settling with the asynchronous test bank.
    pub settling: usize,
    /// Events put on sale (one general-admission, one seated).
    pub events: usize,
    /// Event orders paid.
    pub event_orders_sold: usize,
    /// Event orders left on hold.
    pub event_orders_held: usize,
}

/// Seeds the system whose HTTP address is `base` (e.g. `http://127.0.0.1:8080`).
///
/// # Errors
/// The first request that fails, with what it was for.
pub async fn seed(base: &str, users: usize) -> anyhow::Result<Seeded> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().context("building the HTTP client")?;
    let url = format!("{}/graphql", base.trim_end_matches('/'));
    let users = users.clamp(2, 50);
    let mut clients = Vec::new();
    for n in 1..=users {
        clients.push(Client::join(&http, &url, &format!("demo{n}@example.com")).await?);
    }
    let mut seeded = Seeded { users, ..Seeded::default() };
    let mut listed = Vec::new();
    for (i, (title, price)) in TITLES.iter().enumerate() {
        let seller = i % users;
        let data = clients[seller]
            .gql(
                "mutation($t: String!, $p: Int!) { createTicket(title: $t, priceCents: $p) { id } }",
                json!({"t": title, "p": price}),
            )
            .await
            .with_context(|| format!("listing {title:?}"))?;
        listed.push((seller, data["createTicket"]["id"].as_str().unwrap_or_default().to_owned()));
        seeded.tickets += 1;
    }
    // Every third ticket sells, every fifth is left on hold, one settles asynchronously.
    for (i, (seller, ticket)) in listed.iter().enumerate() {
        let (sells, holds, settles) = (i % 3 == 0, i % 5 == 1, i == 2);
        if !(sells || holds || settles) {
            continue;
        }
        let buyer = (seller + 1 + i % (users - 1)) % users;
        let buyer = if buyer == *seller { (buyer + 1) % users } else { buyer };
        let order = clients[buyer]
            .gql("mutation($t: ID!) { createOrder(ticketId: $t) { id } }", json!({"t": ticket}))
            .await
            .with_context(|| format!("{} holding a ticket", clients[buyer].email))?;
        let order = order["createOrder"]["id"].as_str().unwrap_or_default().to_owned();
        let token = if sells {
            "tok_visa"
        } else if settles {
            "tok_async"
        } else {
            seeded.held += 1;
            continue;
        };
        clients[buyer]
            .gql(
                "mutation($o: ID!, $k: String!) { payOrder(orderId: $o, token: $k) { status } }",
                json!({"o": order, "k": token}),
            )
            .await
            .with_context(|| format!("{} paying", clients[buyer].email))?;
        if sells {
            seeded.sold += 1;
        } else {
            seeded.settling += 1;
        }
    }
    seed_events(&mut clients, &mut seeded).await?;
    Ok(seeded)
}

/// An RFC 3339 time `days` from now.
fn in_days(days: i64) -> anyhow::Result<String> {
    Ok((time::OffsetDateTime::now_utc() + time::Duration::days(days))
        .format(&time::format_description::well_known::Rfc3339)?)
}

/// Two events by the first user: a festival with two general-admission tiers, and a play with
/// two sections of numbered seats; other users buy and hold some of each.
async fn seed_events(clients: &mut [Client], seeded: &mut Seeded) -> anyhow::Result<()> {
    const CREATE: &str = "mutation($input: CreateEventInput!) { createEvent(input: $input) { id ticketTypes { id } } }";
    const ORDER: &str = "mutation($e: ID!, $items: [OrderItemInput!], $seats: [String!]) {
        createEventOrder(eventId: $e, items: $items, seats: $seats) { id } }";
    const PAY: &str = "mutation($o: ID!) { payOrder(orderId: $o, token: \"tok_visa\") { status } }";
    let festival = json!({
        "title": "Summer Festival", "venue": "Riverside Park", "startsAt": in_days(30)?,
        "ticketTypes": [
            {"name": "Early bird", "priceCents": 2_500, "capacity": 200},
            {"name": "Weekend pass", "priceCents": 8_000, "capacity": 800},
        ],
    });
    let play = json!({
        "title": "Hamlet", "venue": "The Old Vic", "startsAt": in_days(14)?,
        "sections": [
            {"name": "Stalls", "priceCents": 6_500, "rows": 10, "seatsPerRow": 20},
            {"name": "Balcony", "priceCents": 3_500, "rows": 5, "seatsPerRow": 15},
        ],
    });
    let mut created = Vec::new();
    for input in [festival, play] {
        let data = clients[0].gql(CREATE, json!({"input": input})).await.context("putting an event on sale")?;
        created.push(data["createEvent"].clone());
        seeded.events += 1;
    }
    let festival = created[0]["id"].as_str().unwrap_or_default().to_owned();
    let tiers: Vec<String> = created[0]["ticketTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect();
    let play = created[1]["id"].as_str().unwrap_or_default().to_owned();
    // (buyer, event, items (tier, quantity), seats, paid); buyers other than the organiser.
    let other = if clients.len() > 2 { 2 } else { 1 };
    let orders = [
        (1, &festival, vec![(1, 2)], vec![], true),
        (other, &festival, vec![(0, 1)], vec![], false),
        (1, &play, vec![], vec!["Stalls-3-9", "Stalls-3-10"], true),
        (other, &play, vec![], vec!["Stalls-3-11"], false),
        (1, &play, vec![], vec!["Balcony-1-8"], false),
    ];
    for (buyer, event, items, seats, paid) in orders {
        let items: Vec<Value> = items
            .into_iter()
            .filter_map(|(tier, quantity): (usize, i64)| {
                tiers.get(tier).map(|t| json!({"ticketTypeId": t, "quantity": quantity}))
            })
            .collect();
        let client = &mut clients[buyer];
        let data = client
            .gql(ORDER, json!({"e": event, "items": items, "seats": seats}))
            .await
            .with_context(|| format!("{} ordering tickets to an event", client.email))?;
        let order = data["createEventOrder"]["id"].as_str().unwrap_or_default().to_owned();
        if paid {
            client.gql(PAY, json!({"o": order})).await.with_context(|| format!("{} paying", client.email))?;
            seeded.event_orders_sold += 1;
        } else {
            seeded.event_orders_held += 1;
        }
    }
    Ok(())
}
