//! Least privilege on NATS: one user per kind of service, each allowed only the subjects it needs.
//!
//! NATS is where commands carry their actor, so whoever may publish `ticketing.cmd.*` may act as
//! anyone: only gateways may. Only the command service writes events, timers and key-value
//! entries; projectors only read the event stream. Each service receives replies on an inbox
//! prefix of its own (`_INBOX_<service>`), so one cannot read another's answers; the command
//! service may publish to the gateways' inboxes (its answers), to no one else's.
//!
//! Services take their user and password from their `NATS_URL`
//! (`nats://command-service:<password>@nats:4222`); [`authorization`] writes the matching block
//! of a `nats-server` configuration (used by `ticketing up`, the tests and, written out, the
//! Kubernetes manifests).

use crate::StreamSettings;

/// The consumers a projector may create, read, acknowledge and delete: its durable one and the
/// one `projector rebuild` reads with.
pub const PROJECTOR_CONSUMERS: [&str; 2] = ["projector", "projector-rebuild"];

/// The kinds of service, each a NATS user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// command-service: answers commands, writes events, timers and key-value entries.
    CommandService,
    /// projector: reads the event stream.
    Projector,
    /// query-service: sends commands, reads stream information for its lag metric.
    Gateway,
}

impl Role {
    /// Every role.
    pub const ALL: [Self; 3] = [Self::CommandService, Self::Projector, Self::Gateway];

    /// The NATS user name (and connection name) of the role.
    pub const fn user(self) -> &'static str {
        match self {
            Self::CommandService => "command-service",
            Self::Projector => "projector",
            Self::Gateway => "query-service",
        }
    }

    /// The inbox prefix its replies arrive on.
    pub fn inbox(self) -> String {
        format!("_INBOX_{}", self.user())
    }

    /// What the role may publish and subscribe to, for a deployment's stream settings.
    pub fn permissions(self, settings: &StreamSettings) -> Permissions {
        let root = &settings.subject_root;
        let stream = &settings.name;
        let inbox = format!("{}.>", self.inbox());
        match self {
            Self::CommandService => Permissions {
                publish: vec![
                    format!("{root}.>"),
                    "$JS.API.>".into(),
                    "$KV.>".into(),
                    "$JS.ACK.>".into(),
                    "$JS.FC.>".into(),
                    // Its answers to the gateways' requests (`allow_responses` refuses an answer
                    // sent after the connection moved to another node).
                    format!("{}.>", Self::Gateway.inbox()),
                ],
                deny_publish: vec![format!("{root}.cmd.>")],
                subscribe: vec![format!("{root}.cmd.>"), inbox],
                allow_responses: false,
            },
            Self::Projector => {
                let mut publish = vec![
                    "$JS.API.INFO".to_owned(),
                    format!("$JS.API.STREAM.INFO.{stream}"),
                    format!("$JS.API.STREAM.MSG.GET.{stream}"),
                    format!("$JS.API.DIRECT.GET.{stream}"),
                    format!("$JS.API.DIRECT.GET.{stream}.>"),
                    "$JS.FC.>".to_owned(),
                ];
                // Its own consumers only, by name: never the command service's.
                for consumer in PROJECTOR_CONSUMERS {
                    publish.extend([
                        format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}"),
                        format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>"),
                        format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{consumer}"),
                        format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
                        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
                        format!("$JS.API.CONSUMER.DELETE.{stream}.{consumer}"),
                        format!("$JS.ACK.{stream}.{consumer}.>"),
                    ]);
                }
                Permissions { publish, deny_publish: vec![], subscribe: vec![inbox], allow_responses: false }
            }
            Self::Gateway => Permissions {
                publish: vec![format!("{root}.cmd.>"), "$JS.API.INFO".into(), format!("$JS.API.STREAM.INFO.{stream}")],
                deny_publish: vec![],
                subscribe: vec![inbox],
                allow_responses: false,
            },
        }
    }
}

/// One user's subject permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may not publish to, even where `publish` allows them.
    pub deny_publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Whether it may answer requests it received (once each).
    pub allow_responses: bool,
}

fn quoted(list: &[String]) -> String {
    list.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
}

/// A password in the configuration: quoted, or, for `$NAME`, a reference to the server's
/// environment variable `NAME` (how the Kubernetes manifests pass secrets in).
fn password(password: &str) -> String {
    if password.starts_with('$') { password.to_owned() } else { format!("{password:?}") }
}

/// The `authorization` block of a `nats-server` configuration: one user per role with its
/// password (`passwords` in the order of [`Role::ALL`]), and `extra` users (name, password) with
/// every permission (operators' tools, test harnesses).
pub fn authorization(settings: &StreamSettings, passwords: &[String; 3], extra: &[(&str, &str)]) -> String {
    let mut users = Vec::new();
    for (role, secret) in Role::ALL.iter().zip(passwords) {
        let secret = password(secret);
        let p = role.permissions(settings);
        let deny =
            if p.deny_publish.is_empty() { String::new() } else { format!(", deny: [{}]", quoted(&p.deny_publish)) };
        let responses = if p.allow_responses { ", allow_responses: true" } else { "" };
        users.push(format!(
            "    {{ user: {:?}, password: {secret}, permissions: {{ publish: {{ allow: [{}]{deny} }}, subscribe: {{ allow: [{}] }}{responses} }} }}",
            role.user(),
            quoted(&p.publish),
            quoted(&p.subscribe),
        ));
    }
    for (user, secret) in extra {
        users.push(format!("    {{ user: {user:?}, password: {} }}", password(secret)));
    }
    format!("authorization {{\n  users: [\n{}\n  ]\n}}\n", users.join("\n"))
}

/// Percent-encodes what is not unreserved in a URL's userinfo.
pub fn encode_userinfo(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `NATS_URL` with credentials: each server of `url` with `user:password@` before its host
/// (percent-encoded, so any password fits).
pub fn url_with_credentials(url: &str, user: &str, password: &str) -> String {
    let (user, password) = (encode_userinfo(user), encode_userinfo(password));
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| match u.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{user}:{password}@{rest}"),
            None => format!("{user}:{password}@{u}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateway_sends_commands_and_only_the_command_service_writes_events() {
        let settings = StreamSettings::default();
        let gateway = Role::Gateway.permissions(&settings);
        assert!(gateway.publish.contains(&"ticketing.cmd.>".to_owned()));
        assert!(!gateway.publish.iter().any(|s| s == "ticketing.>" || s.starts_with("$KV") || s == "$JS.API.>"));
        let projector = Role::Projector.permissions(&settings);
        assert!(!projector.publish.iter().any(|s| s.starts_with("ticketing.") || s.contains("STREAM.DELETE")));
        let deletes: Vec<&String> = projector.publish.iter().filter(|s| s.contains("DELETE")).collect();
        assert_eq!(
            deletes,
            ["$JS.API.CONSUMER.DELETE.TICKETING.projector", "$JS.API.CONSUMER.DELETE.TICKETING.projector-rebuild"],
            "a projector deletes only its own consumers"
        );
        assert!(
            projector
                .publish
                .iter()
                .filter(|s| s.contains("CONSUMER") || s.starts_with("$JS.ACK"))
                .all(|s| s.contains(".projector")),
            "every consumer subject names one of its own: {projector:?}"
        );
        assert!(!projector.publish.iter().any(|s| s.contains("UPDATE") || s.contains("PURGE")));
        let commands = Role::CommandService.permissions(&settings);
        assert!(commands.deny_publish.contains(&"ticketing.cmd.>".to_owned()));
        let config = authorization(&settings, &["a".into(), "b".into(), "c".into()], &[("ops", "d")]);
        assert!(config.contains("user: \"query-service\", password: \"c\""), "{config}");
        assert!(commands.publish.contains(&"_INBOX_query-service.>".to_owned()), "it answers the gateways");
    }

    /// The users of the Kubernetes manifests' NATS, with passwords from its environment.
    pub(crate) fn manifest_authorization() -> String {
        let passwords =
            ["$COMMAND_SERVICE_PASSWORD".into(), "$PROJECTOR_PASSWORD".into(), "$QUERY_SERVICE_PASSWORD".into()];
        authorization(&StreamSettings::default(), &passwords, &[("operator", "$OPERATOR_PASSWORD")])
    }

    #[test]
    fn the_kubernetes_nats_has_exactly_these_users_and_permissions() {
        let manifest =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kubernetes/base/nats.yaml"))
                .unwrap_or_else(|e| panic!("{e}"));
        let expected: String = manifest_authorization().lines().map(|l| format!("    {l}\n")).collect();
        assert!(
            manifest.contains(&expected),
            "deploy/kubernetes/base/nats.yaml must contain, in nats.conf:\n{expected}"
        );
        assert_eq!(manifest.matches("authorization {").count(), 1, "one authorization block, the generated one");
    }

    #[test]
    fn the_compose_nats_has_exactly_these_users_and_permissions() {
        let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/compose/nats.conf"))
            .unwrap_or_else(|e| panic!("{e}"));
        let expected = manifest_authorization();
        assert!(conf.contains(&expected), "deploy/compose/nats.conf must contain:\n{expected}");
        assert_eq!(conf.matches("authorization {").count(), 1, "one authorization block, the generated one");
    }

    #[test]
    fn credentials_go_into_every_server_of_a_url() {
        assert_eq!(url_with_credentials("nats://a:4222", "u", "p@ss/w=rd"), "nats://u:p%40ss%2Fw%3Drd@a:4222");
        assert_eq!(
            url_with_credentials("nats://a:4222, nats://b:4222", "projector", "pw"),
            "nats://projector:pw@a:4222,nats://projector:pw@b:4222"
        );
    }
}
