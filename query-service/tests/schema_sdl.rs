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

#[test]
fn the_schema_has_every_operation_of_the_product() {
    let sdl = query_service::sdl();
    for operation in [
        "me: User",
        "tickets(",
        "ticket(id: ID!): Ticket",
        "myTickets(",
        "myOrders(",
        "order(id: ID!): Order",
        "signUp(",
        "signIn(",
        "signOut: Boolean!",
        "createTicket(",
        "updateTicket(",
        "createOrder(",
        "cancelOrder(",
        "payOrder(",
    ] {
        assert!(sdl.contains(operation), "missing {operation}");
    }
    for enumeration in ["enum Role", "enum TicketStatus", "enum OrderStatus", "enum CancelReason", "enum PaymentStatus"]
    {
        assert!(sdl.contains(enumeration), "missing {enumeration}");
    }
}
