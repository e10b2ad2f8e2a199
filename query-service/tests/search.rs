//! `tickets(search:)` and `events(search:)` against the real system: words of titles (and venues)
//! matched case- and accent-insensitively, every word required, the last one as a prefix, best
//! match first, paginated like every connection, and text-search syntax in a search taken as words.

use serde_json::{Value, json};

mod common;
use common::{Client, Stack, code, stack};

const SIGN_UP: &str = "mutation($e: String!) { signUp(email: $e, password: \"correct horse\") { id } }";
const CREATE_TICKET: &str = "mutation($t: String!) { createTicket(title: $t, priceCents: 1000) { id } }";
const TICKETS: &str = "query($s: String, $first: Int, $after: String, $status: TicketStatus) {
    tickets(search: $s, first: $first, after: $after, status: $status) {
      nodes { id title } pageInfo { hasNextPage endCursor } } }";
const CREATE_EVENT: &str = "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }";
const EVENTS: &str = "query($s: String, $first: Int, $after: String) {
    events(search: $s, first: $first, after: $after) { nodes { id title venue } pageInfo { hasNextPage endCursor } } }";

async fn signed_up(stack: &Stack) -> Client {
    let mut client = Client::default();
    let email = format!("searcher-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = client.gql(stack, SIGN_UP, json!({"e": email})).await;
    assert!(body["errors"].is_null(), "{body}");
    client
}

async fn list(client: &mut Client, stack: &Stack, title: &str) -> String {
    let body = client.gql(stack, CREATE_TICKET, json!({"t": title})).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["createTicket"]["id"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned()
}

fn titles(body: &Value, connection: &str) -> Vec<String> {
    assert!(body["errors"].is_null(), "{body}");
    let nodes = body["data"][connection]["nodes"].as_array().unwrap_or_else(|| panic!("{body}"));
    nodes.iter().map(|n| n["title"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn search_tickets(client: &mut Client, stack: &Stack, search: &str) -> Vec<String> {
    let body = client.gql(stack, TICKETS, json!({"s": search})).await;
    let mut found = titles(&body, "tickets");
    found.sort();
    found
}

#[tokio::test]
async fn tickets_are_found_by_every_word_case_and_accents_aside_the_last_one_as_a_prefix() {
    let stack = stack().await;
    let mut seller = signed_up(&stack).await;
    for title in
        ["Rock Arena Night", "Café Über Jazz", "ÉTÉ festival", "Straße Fußball", "Arena Rockabilly", "Quiet evening"]
    {
        list(&mut seller, &stack, title).await;
    }
    let mut anyone = Client::default();
    let cases: [(&str, &[&str]); 12] = [
        ("rock are", &["Rock Arena Night"]),
        ("ROCK", &["Arena Rockabilly", "Rock Arena Night"]),
        ("arena", &["Arena Rockabilly", "Rock Arena Night"]),
        ("cafe uber", &["Café Über Jazz"]),
        ("CAFÉ ÜBER", &["Café Über Jazz"]),
        ("ete", &["ÉTÉ festival"]),
        ("strasse fussb", &["Straße Fußball"]),
        ("straße", &["Straße Fußball"]),
        ("night rock", &["Rock Arena Night"]),
        ("rock jazz", &[]),
        ("opera", &[]),
        ("ar", &["Arena Rockabilly", "Rock Arena Night"]),
    ];
    for (search, expected) in cases {
        assert_eq!(search_tickets(&mut anyone, &stack, search).await, expected, "search {search:?}");
    }
    // Only the last word is a prefix: "roc arena" needs the whole word "roc".
    assert_eq!(search_tickets(&mut anyone, &stack, "roc arena").await, Vec::<String>::new());
    // Text-search syntax is only separators between words, never an operator or an error.
    for hostile in ["rock | jazz", "!rock", "rock & (arena", "'rock':*", "rock\\", "a:* | b", "<->"] {
        let body = anyone.gql(&stack, TICKETS, json!({"s": hostile})).await;
        assert!(body["errors"].is_null(), "{hostile:?}: {body}");
    }
    assert_eq!(search_tickets(&mut anyone, &stack, "rock | jazz").await, Vec::<String>::new(), "| is not OR");
    assert_eq!(search_tickets(&mut anyone, &stack, "!rock").await.len(), 2, "! is not NOT");
    // Nothing to search for lists everything, as without `search`.
    assert_eq!(search_tickets(&mut anyone, &stack, "  ?! ").await.len(), 6);
}

#[tokio::test]
async fn the_best_match_comes_first_and_matches_page_like_any_connection() {
    let stack = stack().await;
    let mut seller = signed_up(&stack).await;
    // Seven matches of "blues", one of them a short title that is nothing else.
    let best = list(&mut seller, &stack, "Blues").await;
    for n in 0..6 {
        list(&mut seller, &stack, &format!("Evening of soul funk and blues number {n} in the park")).await;
    }
    list(&mut seller, &stack, "Jazz only").await;
    let mut anyone = Client::default();
    let first = anyone.gql(&stack, TICKETS, json!({"s": "blues", "first": 3})).await;
    assert!(first["errors"].is_null(), "{first}");
    let nodes = &first["data"]["tickets"]["nodes"];
    assert_eq!(nodes[0]["id"].as_str(), Some(best.as_str()), "the shortest exact title first: {first}");
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = anyone.gql(&stack, TICKETS, json!({"s": "blues", "first": 3, "after": after})).await;
        assert!(body["errors"].is_null(), "{body}");
        let page = &body["data"]["tickets"];
        seen.extend(
            page["nodes"].as_array().into_iter().flatten().map(|n| n["id"].as_str().unwrap_or_default().to_owned()),
        );
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap_or(false) {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        assert!(seen.len() < 20, "pages never end: {body}");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (7, 7), "every match once over the pages: {seen:?}");
    assert_eq!(seen[0], best);

    // The status filter applies to matches too; a bad cursor and a search too long are refused.
    let body = anyone.gql(&stack, TICKETS, json!({"s": "blues", "status": "SOLD"})).await;
    assert_eq!(titles(&body, "tickets"), Vec::<String>::new());
    let body = anyone.gql(&stack, TICKETS, json!({"s": "blues", "after": "12345678"})).await;
    assert_eq!((code(&body), body["errors"][0]["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("after")));
    let body = anyone.gql(&stack, TICKETS, json!({"s": "x".repeat(201)})).await;
    assert_eq!((code(&body), body["errors"][0]["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("search")));
    let body = anyone.gql(&stack, TICKETS, json!({"s": "blues", "first": 101})).await;
    assert_eq!((code(&body), body["errors"][0]["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("first")));
}

#[tokio::test]
async fn punctuation_inside_a_title_separates_words_as_it_does_in_a_search() {
    let stack = stack().await;
    let mut seller = signed_up(&stack).await;
    for title in ["AC/DC Tribute", "R.E.M. night", "Tour 2.5 gala -20%", "St.Pauli derby", "info@club.example party"] {
        list(&mut seller, &stack, title).await;
    }
    let mut anyone = Client::default();
    let cases: [(&str, &[&str]); 9] = [
        ("AC/DC", &["AC/DC Tribute"]),
        ("ac dc", &["AC/DC Tribute"]),
        ("r.e.m.", &["R.E.M. night"]),
        ("rem", &[]),
        ("2.5", &["Tour 2.5 gala -20%"]),
        ("2.", &["Tour 2.5 gala -20%"]),
        ("20", &["Tour 2.5 gala -20%"]),
        ("pauli", &["St.Pauli derby"]),
        ("club example", &["info@club.example party"]),
    ];
    for (search, expected) in cases {
        assert_eq!(search_tickets(&mut anyone, &stack, search).await, expected, "search {search:?}");
    }
}

/// A search's cursor carries the last row's rank and place, so the next page goes on where the
/// first ended even when that row has been renamed since; another list's cursor is refused.
#[tokio::test]
async fn a_search_pages_on_past_a_renamed_row_and_takes_only_its_own_cursors() {
    let stack = stack().await;
    let mut seller = signed_up(&stack).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(list(&mut seller, &stack, &format!("Rock night {n}")).await);
    }
    let mut anyone = Client::default();
    let first = anyone.gql(&stack, TICKETS, json!({"s": "rock", "first": 2})).await;
    assert!(first["errors"].is_null(), "{first}");
    let shown: Vec<String> = first["data"]["tickets"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let after = first["data"]["tickets"]["pageInfo"]["endCursor"].as_str().unwrap_or_default().to_owned();
    let last = shown.last().cloned().unwrap_or_default();
    let renamed = seller
        .gql(&stack, "mutation($id: ID!) { updateTicket(id: $id, title: \"Jazz only\") { id } }", json!({"id": last}))
        .await;
    assert!(renamed["errors"].is_null(), "{renamed}");
    let rest = anyone.gql(&stack, TICKETS, json!({"s": "rock", "first": 10, "after": after})).await;
    assert!(rest["errors"].is_null(), "{rest}");
    let rest: Vec<String> = rest["data"]["tickets"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(rest.len(), 3, "the three not yet shown: {rest:?}");
    assert!(rest.iter().all(|id| !shown.contains(id)), "no row twice");

    let plain = anyone.gql(&stack, TICKETS, json!({"first": 1})).await;
    let plain_cursor = plain["data"]["tickets"]["pageInfo"]["endCursor"].clone();
    let body = anyone.gql(&stack, TICKETS, json!({"s": "rock", "after": plain_cursor})).await;
    assert_eq!((code(&body), body["errors"][0]["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("after")));
    let body = anyone.gql(&stack, TICKETS, json!({"after": after})).await;
    assert_eq!((code(&body), body["errors"][0]["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("after")));
    let body = anyone.gql(&stack, EVENTS, json!({"s": "rock", "after": after})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "a ticket search's cursor is not an event search's");
}

#[tokio::test]
async fn an_edited_title_is_found_by_its_new_words_at_once() {
    let stack = stack().await;
    let mut seller = signed_up(&stack).await;
    let id = list(&mut seller, &stack, "Old name").await;
    let body = seller
        .gql(
            &stack,
            "mutation($id: ID!) { updateTicket(id: $id, title: \"Brand new héading\") { id } }",
            json!({"id": id}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(search_tickets(&mut seller, &stack, "heading").await, ["Brand new héading"]);
    assert_eq!(search_tickets(&mut seller, &stack, "old name").await, Vec::<String>::new());
}

fn event(title: &str, venue: &str, days: i64) -> Value {
    let at = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let starts_at = at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    json!({"input": {
        "title": title, "venue": venue, "startsAt": starts_at,
        "ticketTypes": [{"name": "Standing", "priceCents": 2500, "capacity": 3}],
    }})
}

#[tokio::test]
async fn events_are_found_by_title_and_venue_a_title_first_and_page() {
    let stack = stack().await;
    let mut organizer = signed_up(&stack).await;
    for (title, venue, days) in [
        ("Orchestra night", "The Arena", 3),
        ("Arena Tour", "Town Hall", 40),
        ("Chamber music", "Église Saint-Paul", 10),
        ("Folk evening", "Arena Park", 5),
    ] {
        let body = organizer.gql(&stack, CREATE_EVENT, event(title, venue, days)).await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let mut anyone = Client::default();
    let body = anyone.gql(&stack, EVENTS, json!({"s": "arena"})).await;
    let found = titles(&body, "events");
    assert_eq!(found.len(), 3, "{body}");
    assert_eq!(found[0], "Arena Tour", "a title's word outweighs a venue's (though it starts last): {body}");
    assert_eq!(&found[1..], ["Orchestra night", "Folk evening"], "equal matches soonest first: {body}");
    let body = anyone.gql(&stack, EVENTS, json!({"s": "eglise saint"})).await;
    assert_eq!(titles(&body, "events"), ["Chamber music"]);
    let body = anyone.gql(&stack, EVENTS, json!({"s": "ballet"})).await;
    assert_eq!(titles(&body, "events"), Vec::<String>::new());

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..5 {
        let body = anyone.gql(&stack, EVENTS, json!({"s": "ARE", "first": 1, "after": after})).await;
        seen.extend(titles(&body, "events"));
        let info = &body["data"]["events"]["pageInfo"];
        if !info["hasNextPage"].as_bool().unwrap_or(false) {
            break;
        }
        after = info["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, ["Arena Tour", "Orchestra night", "Folk evening"], "one a page, in order, each once");
}
