//! Events over GraphQL against the real system: create, list, order all or nothing with the
//! names of what is gone, read your writes (availability, seats), cancel, and the refusals.

use serde_json::{Value, json};

mod common;
use common::{Client, Stack, code, stack};

const SIGN_UP: &str = "mutation($e: String!) { signUp(email: $e, password: \"correct horse\") { id } }";

const CREATE: &str = "mutation($input: CreateEventInput!) { createEvent(input: $input) {
    id title venue startsAt available version organizer { id }
    ticketTypes { id name priceCents currency capacity available }
    sections { name priceCents rows seatsPerRow available } } }";

const EVENT: &str = "query($id: ID!) { event(id: $id) { id available version
    ticketTypes { id available } sections { name available seatMap seats { id status } reserved: seats(status: RESERVED) { id } } } }";

const ORDER: &str = "mutation($e: ID!, $items: [OrderItemInput!], $seats: [String!], $key: String) {
    createEventOrder(eventId: $e, items: $items, seats: $seats, idempotencyKey: $key) {
      id status amountCents ticket { id } event { id title }
      items { ticketType { id name } seat priceCents } } }";

fn in_days(days: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn input(title: &str, starts_at: &str) -> Value {
    json!({
        "title": title,
        "venue": "  Town Hall ",
        "startsAt": starts_at,
        "ticketTypes": [{"name": "Standing", "priceCents": 2500, "capacity": 3}, {"name": "VIP", "priceCents": 10000, "capacity": 1}],
        "sections": [{"name": "A", "priceCents": 9000, "rows": 2, "seatsPerRow": 3}],
    })
}

async fn signed_up(stack: &Stack, name: &str) -> Client {
    let mut client = Client::default();
    let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = client.gql(stack, SIGN_UP, json!({"e": email})).await;
    assert!(body["errors"].is_null(), "{body}");
    client
}

fn str_of<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(value, |v, key| &v[*key]).as_str().unwrap_or_else(|| panic!("{path:?} in {value}"))
}

#[tokio::test]
async fn an_event_is_created_listed_and_sold_all_or_nothing_with_read_your_writes() {
    let stack = stack().await;
    let mut organizer = signed_up(&stack, "organizer").await;
    let (mut first, mut second) = (signed_up(&stack, "first").await, signed_up(&stack, "second").await);

    let created = organizer.gql(&stack, CREATE, json!({"input": input("  Rock Arena ", &in_days(30))})).await;
    let event = &created["data"]["createEvent"];
    assert!(created["errors"].is_null(), "{created}");
    assert_eq!((event["title"].as_str(), event["venue"].as_str()), (Some("Rock Arena"), Some("Town Hall")));
    assert_eq!(event["available"], 3 + 1 + 6);
    assert_eq!(event["ticketTypes"][0]["currency"], "USD");
    assert_eq!(event["sections"][0]["available"], 6);
    let id = str_of(event, &["id"]).to_owned();
    let standing = event["ticketTypes"][0]["id"].as_str().unwrap_or_else(|| panic!("{event}")).to_owned();
    let vip = event["ticketTypes"][1]["id"].as_str().unwrap_or_default().to_owned();

    // Listed soonest first, for anyone; mine for the organiser.
    let later = organizer.gql(&stack, CREATE, json!({"input": input("Later", &in_days(60))})).await;
    assert!(later["errors"].is_null(), "{later}");
    let listed = Client::default()
        .gql(&stack, "{ events(first: 10) { nodes { title } pageInfo { hasNextPage } } }", json!({}))
        .await;
    let titles: Vec<&str> = listed["data"]["events"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["title"].as_str())
        .collect();
    let (rock, later_at) = (titles.iter().position(|t| *t == "Rock Arena"), titles.iter().position(|t| *t == "Later"));
    assert!(rock.is_some() && later_at.is_some() && rock < later_at, "{titles:?}");
    let mine = organizer.gql(&stack, "{ myEvents { nodes { title } } }", json!({})).await;
    assert_eq!(mine["data"]["myEvents"]["nodes"][0]["title"], "Later", "newest first: {mine}");

    // An order of two tiers and two seats: its items, its amount, and what is left right after.
    let ordered = first
        .gql(&stack, ORDER, json!({"e": id, "items": [{"ticketTypeId": standing, "quantity": 2}, {"ticketTypeId": vip, "quantity": 1}], "seats": ["A-1-1", "A-2-3"]}))
        .await;
    let order = &ordered["data"]["createEventOrder"];
    assert!(ordered["errors"].is_null(), "{ordered}");
    assert_eq!(order["status"], "CREATED");
    assert_eq!(order["amountCents"], 2 * 2500 + 10000 + 2 * 9000);
    assert!(order["ticket"].is_null(), "an event order has no ticket");
    assert_eq!(order["event"]["title"], "Rock Arena");
    let items = order["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 5, "one item per ticket: {order}");
    let seats: Vec<&str> = items.iter().filter_map(|i| i["seat"].as_str()).collect();
    assert_eq!(seats, ["A-1-1", "A-2-3"]);
    assert_eq!(items.iter().filter(|i| i["ticketType"]["name"] == "Standing").count(), 2);
    let order_id = str_of(order, &["id"]).to_owned();

    let seen = Client::default().gql(&stack, EVENT, json!({"id": id})).await;
    let seen = &seen["data"]["event"];
    assert_eq!(seen["available"], 10 - 5, "{seen}");
    assert_eq!(
        (seen["ticketTypes"][0]["available"].as_i64(), seen["ticketTypes"][1]["available"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(seen["sections"][0]["available"], 4);
    let reserved: Vec<&str> =
        seen["sections"][0]["reserved"].as_array().into_iter().flatten().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(reserved, ["A-1-1", "A-2-3"]);
    assert_eq!(seen["sections"][0]["seats"].as_array().map(Vec::len), Some(6));
    // The same seats as one letter each, row by row (A-1-1 and A-2-3 held).
    assert_eq!(seen["sections"][0]["seatMap"], "RAAAAR");

    // All or nothing: a taken seat and a sold-out tier are both named, nothing is held.
    let refused = second
        .gql(
            &stack,
            ORDER,
            json!({"e": id, "items": [{"ticketTypeId": vip, "quantity": 1}], "seats": ["A-1-1", "A-1-2"]}),
        )
        .await;
    assert_eq!(code(&refused), "CONFLICT", "{refused}");
    assert_eq!(refused["errors"][0]["extensions"]["unavailable"], json!(["A-1-1", vip]), "{refused}");
    let after = Client::default().gql(&stack, EVENT, json!({"id": id})).await;
    assert_eq!(after["data"]["event"]["available"], 5, "nothing held by the refused order");
    // A quantity larger than what is left names the type.
    let refused =
        second.gql(&stack, ORDER, json!({"e": id, "items": [{"ticketTypeId": standing, "quantity": 2}]})).await;
    assert_eq!(refused["errors"][0]["extensions"]["unavailable"], json!([standing]), "{refused}");

    // The organiser cannot buy; bad input names its field; unknown things are not found.
    let own = organizer.gql(&stack, ORDER, json!({"e": id, "seats": ["A-1-2"]})).await;
    assert_eq!(code(&own), "FORBIDDEN", "{own}");
    let eleven =
        second.gql(&stack, ORDER, json!({"e": id, "items": [{"ticketTypeId": standing, "quantity": 11}]})).await;
    assert_eq!((code(&eleven), eleven["errors"][0]["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("items")));
    let twice = second.gql(&stack, ORDER, json!({"e": id, "seats": ["A-1-2", "A-1-2"]})).await;
    assert_eq!((code(&twice), twice["errors"][0]["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("seats")));
    for (event_id, seats) in
        [(id.as_str(), "A-9-9"), ("not-an-id", "A-1-2"), ("00000000-0000-0000-0000-000000000001", "A-1-2")]
    {
        let unknown = second.gql(&stack, ORDER, json!({"e": event_id, "seats": [seats]})).await;
        assert_eq!(code(&unknown), "NOT_FOUND", "{unknown}");
    }
    let unknown_type =
        second.gql(&stack, ORDER, json!({"e": id, "items": [{"ticketTypeId": "nope", "quantity": 1}]})).await;
    assert_eq!(code(&unknown_type), "NOT_FOUND", "{unknown_type}");
    let signed_out = Client::default().gql(&stack, ORDER, json!({"e": id, "seats": ["A-1-2"]})).await;
    assert_eq!(code(&signed_out), "UNAUTHENTICATED");

    // Mine, and cancelled: everything comes back at once.
    let my_orders = first.gql(&stack, "{ myOrders { nodes { id event { id } } } }", json!({})).await;
    assert_eq!(my_orders["data"]["myOrders"]["nodes"][0]["id"], order_id.as_str(), "{my_orders}");
    let cancelled = first
        .gql(&stack, "mutation($o: ID!) { cancelOrder(id: $o) { status cancelReason } }", json!({"o": order_id}))
        .await;
    assert_eq!(cancelled["data"]["cancelOrder"], json!({"status": "CANCELLED", "cancelReason": "USER"}), "{cancelled}");
    let freed = Client::default().gql(&stack, EVENT, json!({"id": id})).await;
    assert_eq!(freed["data"]["event"]["available"], 10, "{freed}");
    assert_eq!(freed["data"]["event"]["sections"][0]["reserved"], json!([]));
    assert_eq!(freed["data"]["event"]["sections"][0]["seatMap"], "AAAAAA");
    // The order is the buyer's (and admins') to read.
    let stranger = second.gql(&stack, "query($o: ID!) { order(id: $o) { id } }", json!({"o": order_id})).await;
    assert_eq!(code(&stranger), "FORBIDDEN");
}

#[tokio::test]
async fn bad_events_are_refused_with_a_path_and_only_the_organiser_edits_and_reads_the_history() {
    let stack = stack().await;
    let mut organizer = signed_up(&stack, "organizer").await;
    let mut stranger = signed_up(&stack, "stranger").await;
    let mut bad = input("Rock", &in_days(3));
    bad["ticketTypes"][1]["capacity"] = json!(0);
    let refused = organizer.gql(&stack, CREATE, json!({"input": bad})).await;
    assert_eq!(
        (code(&refused), refused["errors"][0]["extensions"]["field"].as_str()),
        ("BAD_USER_INPUT", Some("ticketTypes.1.capacity"))
    );
    for starts_at in ["tomorrow", "2001-01-01T00:00:00Z"] {
        let refused = organizer.gql(&stack, CREATE, json!({"input": input("Rock", starts_at)})).await;
        assert_eq!(refused["errors"][0]["extensions"]["field"], "startsAt", "{refused}");
    }
    let mut seats = input("Rock", &in_days(3));
    seats["sections"][0]["seatsPerRow"] = json!(201);
    let refused = organizer.gql(&stack, CREATE, json!({"input": seats})).await;
    assert_eq!(refused["errors"][0]["extensions"]["field"], "sections.0.seatsPerRow", "{refused}");
    let none = organizer.gql(&stack, "{ myEvents { nodes { id } } }", json!({})).await;
    assert_eq!(none["data"]["myEvents"]["nodes"], json!([]), "nothing was created");

    let created = organizer.gql(&stack, CREATE, json!({"input": input("Rock", &in_days(3))})).await;
    let id = str_of(&created, &["data", "createEvent", "id"]).to_owned();
    let update = "mutation($id: ID!, $t: String) { updateEvent(id: $id, title: $t) { title version } }";
    let forbidden = stranger.gql(&stack, update, json!({"id": id, "t": "Mine"})).await;
    assert_eq!(code(&forbidden), "FORBIDDEN");
    let updated = organizer.gql(&stack, update, json!({"id": id, "t": "Jazz"})).await;
    assert_eq!(updated["data"]["updateEvent"]["title"], "Jazz", "{updated}");
    let history = "query($id: ID!) { event(id: $id) { history { type version } } }";
    let lines = organizer.gql(&stack, history, json!({"id": id})).await;
    assert_eq!(
        lines["data"]["event"]["history"],
        json!([{"type": "ShowCreated", "version": 1}, {"type": "ShowUpdated", "version": 2}])
    );
    assert_eq!(code(&stranger.gql(&stack, history, json!({"id": id})).await), "FORBIDDEN");
    let unknown = Client::default()
        .gql(&stack, "{ event(id: \"00000000-0000-0000-0000-000000000001\") { id } }", json!({}))
        .await;
    assert!(unknown["data"]["event"].is_null());
    let page = Client::default().gql(&stack, "{ events(first: 101) { nodes { id } } }", json!({})).await;
    assert_eq!(page["errors"][0]["extensions"]["field"], "first");
    let page = Client::default().gql(&stack, "{ events(after: \"12345\") { nodes { id } } }", json!({})).await;
    assert_eq!(page["errors"][0]["extensions"]["field"], "after");
}
