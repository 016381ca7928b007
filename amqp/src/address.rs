//! Link addresses and token audiences. The SDKs write them as `hub/...`, as
//! `amqps://host/hub/...` (Python) or `sb://host/hub/...`; only the path counts, and it
//! is compared case-insensitively, as the service does.

/// What a link's address names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Cbs,
    Management,
    Hub(String),
    Partition {
        hub: String,
        partition: i32,
    },
    ConsumerPartition {
        hub: String,
        consumer_group: String,
        partition: i32,
    },
}

/// The path segments of an address or audience, without `scheme://host/`.
pub fn segments(address: &str) -> Vec<&str> {
    let path = match address.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p).unwrap_or(""),
        None => address,
    };
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Parse a link address.
pub fn parse(address: &str) -> Option<Node> {
    let s = segments(address);
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match s.as_slice() {
        [n] if eq(n, "$cbs") => Some(Node::Cbs),
        [n] if eq(n, "$management") => Some(Node::Management),
        [_, n] if eq(n, "$management") => Some(Node::Management),
        [hub] => Some(Node::Hub(hub.to_string())),
        [hub, p, id] if eq(p, "Partitions") => Some(Node::Partition {
            hub: hub.to_string(),
            partition: id.parse().ok()?,
        }),
        [hub, c, cg, p, id] if eq(c, "ConsumerGroups") && eq(p, "Partitions") => {
            Some(Node::ConsumerPartition {
                hub: hub.to_string(),
                consumer_group: cg.to_string(),
                partition: id.parse().ok()?,
            })
        }
        _ => None,
    }
}

/// Whether a token for `audience` covers `entity` (both addresses): the audience's path
/// is a prefix of the entity's, segment by segment.
pub fn covers(audience: &str, entity: &str) -> bool {
    let a = segments(audience);
    let e = segments(entity);
    a.len() <= e.len() && a.iter().zip(&e).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// A client-supplied string, cut and stripped of control characters, for a log line.
pub fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_every_sdk_form() {
        assert_eq!(parse("$cbs"), Some(Node::Cbs));
        assert_eq!(parse("eh1/$management"), Some(Node::Management));
        assert_eq!(
            parse("amqps://ns.example/eh1"),
            Some(Node::Hub("eh1".into()))
        );
        assert_eq!(
            parse("eh1/Partitions/3"),
            Some(Node::Partition {
                hub: "eh1".into(),
                partition: 3
            })
        );
        assert_eq!(
            parse("amqp://localhost:5672/eh1/ConsumerGroups/$Default/Partitions/0"),
            Some(Node::ConsumerPartition {
                hub: "eh1".into(),
                consumer_group: "$Default".into(),
                partition: 0
            })
        );
        assert_eq!(parse("eh1/Partitions/x"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn audiences_cover_their_paths() {
        assert!(covers("sb://ns/", "eh1/Partitions/0"));
        assert!(covers("sb://ns/EH1", "amqps://ns/eh1/Partitions/0"));
        assert!(covers(
            "sb://ns/eh1/consumergroups/$default",
            "eh1/ConsumerGroups/$Default/Partitions/1"
        ));
        assert!(!covers("sb://ns/eh2", "eh1"));
        assert!(!covers("sb://ns/eh1/Partitions/1", "eh1/Partitions/0"));
    }
}
