//! `schema.graphql` is generated: this test rewrites it and fails when it was out of date.

#[test]
fn schema_graphql_matches_the_code() {
    let path = testkit::workspace_root().join("schema.graphql");
    let generated = format!(
        "# Generated from query-service's code-first schema by its tests: do not edit.\n\n{}",
        query_service::sdl()
    );
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        panic!("schema.graphql was out of date and has been rewritten; commit it");
    }
}

/// Every type of the schema: its fields (or enum values), each with its arguments and type, as
/// SDL prints them (`first: Int = 20`, `TicketConnection!`).
fn signatures() -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let document = async_graphql::parser::parse_schema(query_service::sdl()).unwrap_or_else(|e| panic!("{e}"));
    let mut types = std::collections::BTreeMap::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else { continue };
        let ty = ty.node;
        let mut members = std::collections::BTreeMap::new();
        match ty.kind {
            TypeKind::Object(object) => {
                for field in object.fields {
                    let field = field.node;
                    let args: Vec<String> = field
                        .arguments
                        .iter()
                        .map(|a| match &a.node.default_value {
                            Some(default) => format!("{}: {} = {}", a.node.name.node, a.node.ty.node, default.node),
                            None => format!("{}: {}", a.node.name.node, a.node.ty.node),
                        })
                        .collect();
                    let args = if args.is_empty() { String::new() } else { format!("({})", args.join(", ")) };
                    members.insert(field.name.node.to_string(), format!("{args}: {}", field.ty.node));
                }
            }
            TypeKind::Enum(enumeration) => {
                for value in enumeration.values {
                    members.insert(value.node.value.node.to_string(), String::new());
                }
            }
            _ => {}
        }
        types.insert(ty.name.node.to_string(), members);
    }
    types
}

/// Every operation of PRODUCT.md §3 that exists today, with its exact arguments and result, and
/// the fields and enum values it names: by name and type, not as substrings of the SDL.
#[test]
fn the_schema_has_every_operation_of_the_product() {
    let types = signatures();
    let operations: [(&str, &str, &str); 16] = [
        ("Query", "me", ": User"),
        (
            "Query",
            "tickets",
            "(first: Int = 20, after: String, status: TicketStatus, search: String): TicketConnection!",
        ),
        ("Query", "ticket", "(id: ID!): Ticket"),
        ("Query", "myTickets", "(first: Int = 20, after: String): TicketConnection!"),
        ("Query", "myOrders", "(first: Int = 20, after: String): OrderConnection!"),
        ("Query", "order", "(id: ID!): Order"),
        ("Mutation", "signUp", "(email: String!, password: String!): User!"),
        ("Mutation", "signIn", "(email: String!, password: String!): User!"),
        ("Mutation", "signOut", ": Boolean!"),
        ("Mutation", "createTicket", "(title: String!, priceCents: Int!): Ticket!"),
        ("Mutation", "updateTicket", "(id: ID!, title: String, priceCents: Int): Ticket!"),
        ("Mutation", "createOrder", "(ticketId: ID!, idempotencyKey: String): Order!"),
        ("Mutation", "cancelOrder", "(id: ID!): Order!"),
        ("Mutation", "payOrder", "(orderId: ID!, token: String!, idempotencyKey: String): Payment!"),
        ("Subscription", "ticketChanged", "(id: ID): Ticket!"),
        ("Subscription", "orderChanged", "(id: ID!): Order!"),
    ];
    for (root, name, signature) in operations {
        let found = types.get(root).and_then(|fields| fields.get(name));
        assert_eq!(found.map(String::as_str), Some(signature), "{root}.{name}");
    }
    let fields: [(&str, &[&str]); 8] = [
        ("User", &["id", "email", "roles"]),
        (
            "Ticket",
            &[
                "id",
                "title",
                "priceCents",
                "currency",
                "status",
                "version",
                "seller",
                "createdAt",
                "updatedAt",
                "history",
            ],
        ),
        ("Order", &["id", "ticket", "buyer", "status", "cancelReason", "expiresAt", "createdAt", "payment", "version"]),
        ("Payment", &["id", "order", "amountCents", "currency", "status", "providerRef", "createdAt"]),
        ("TicketConnection", &["nodes", "pageInfo"]),
        ("OrderConnection", &["nodes", "pageInfo"]),
        ("PageInfo", &["hasNextPage", "endCursor"]),
        ("TicketEvent", &["type", "at", "version"]),
    ];
    for (ty, names) in fields {
        let members = types.get(ty).unwrap_or_else(|| panic!("no type {ty}"));
        for name in names {
            assert!(members.contains_key(*name), "{ty}.{name} is missing");
        }
    }
    let enums: [(&str, &[&str]); 5] = [
        ("Role", &["USER", "ADMIN"]),
        ("TicketStatus", &["AVAILABLE", "RESERVED", "SOLD"]),
        ("OrderStatus", &["CREATED", "AWAITING_PAYMENT", "COMPLETE", "CANCELLED"]),
        ("CancelReason", &["USER", "EXPIRED", "ADMIN"]),
        ("PaymentStatus", &["PENDING", "SUCCEEDED", "FAILED", "REFUNDED"]),
    ];
    for (name, values) in enums {
        let found: Vec<&str> = types.get(name).map(|v| v.keys().map(String::as_str).collect()).unwrap_or_default();
        let mut expected = values.to_vec();
        expected.sort_unstable();
        assert_eq!(found, expected, "enum {name}");
    }
}
