//! MQTT's validity rules for topic names and filters (MQTT 3.1.1 §4.7.1,
//! the same in MQTT 5): a name has no wildcard; in a filter `#` is a whole
//! last level and `+` a whole level.

/// Whether `topic` may name a PUBLISH (no wildcard characters).
pub fn valid_topic(topic: &str) -> bool {
    !topic.contains(['+', '#'])
}

/// Whether `filter` may be subscribed to.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        let wildcard_ok = match level {
            "+" => true,
            "#" => last,
            _ => !level.contains(['+', '#']),
        };
        if !wildcard_ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        for good in ["#", "+", "a/+/b", "a/#", "+/+", "/", "a//b", "sport/tennis/player1/#"] {
            assert!(valid_filter(good), "{good}");
        }
        for bad in ["", "a#", "a/#/b", "sport+", "a/++", "#/a", "a/b#"] {
            assert!(!valid_filter(bad), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(valid_topic("chat/p/user/u/outbox"));
        assert!(!valid_topic("chat/+/x"));
        assert!(!valid_topic("chat/#"));
    }
}
