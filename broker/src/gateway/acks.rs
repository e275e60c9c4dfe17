//! Acknowledgements the gateway must rewrite on their way back from rumqttd:
//! SUBACKs of subscriptions it partly refused, and UNSUBACKs of
//! unsubscriptions it made itself when a membership was revoked.
use std::collections::{HashMap, VecDeque};

use rumqttd::protocol::SubscribeReasonCode;

#[derive(Default)]
pub(crate) struct AckRewrites {
    /// pkid → return codes, `None` where rumqttd's answer goes.
    partial_subacks: HashMap<u16, Vec<Option<SubscribeReasonCode>>>,
    /// UNSUBSCRIBEs sent upstream in order, with whether the gateway made it.
    /// rumqttd answers in order, so the first match is the right one even if
    /// the client reuses a packet id the gateway also used.
    unsubscribes: VecDeque<(u16, bool)>,
}

impl AckRewrites {
    pub(crate) fn expect_partial_suback(&mut self, pkid: u16, codes: Vec<Option<SubscribeReasonCode>>) {
        self.partial_subacks.insert(pkid, codes);
    }

    /// Merges rumqttd's codes into the template of a partly refused SUBSCRIBE.
    pub(crate) fn merge_suback(&mut self, pkid: u16, upstream: &[SubscribeReasonCode]) -> Option<Vec<SubscribeReasonCode>> {
        let template = self.partial_subacks.remove(&pkid)?;
        let mut upstream = upstream.iter().copied();
        Some(
            template
                .into_iter()
                .map(|code| code.unwrap_or_else(|| upstream.next().unwrap_or(SubscribeReasonCode::Failure)))
                .collect(),
        )
    }

    pub(crate) fn unsubscribe_sent(&mut self, pkid: u16, by_gateway: bool) {
        self.unsubscribes.push_back((pkid, by_gateway));
    }

    /// Whether the UNSUBACK for `pkid` answers the gateway (and must not reach the client).
    pub(crate) fn unsuback_is_gateways(&mut self, pkid: u16) -> bool {
        match self.unsubscribes.iter().position(|(id, _)| *id == pkid) {
            Some(index) => self.unsubscribes.remove(index).is_some_and(|(_, by_gateway)| by_gateway),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::QoS;

    #[test]
    fn merges_refusals_with_upstream_codes() {
        let mut rewrites = AckRewrites::default();
        rewrites.expect_partial_suback(7, vec![Some(SubscribeReasonCode::Failure), None]);
        let merged = rewrites.merge_suback(7, &[SubscribeReasonCode::Success(QoS::AtLeastOnce)]).unwrap();
        assert_eq!(merged, vec![SubscribeReasonCode::Failure, SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
        assert!(rewrites.merge_suback(7, &[]).is_none());
    }

    #[test]
    fn gateway_unsubacks_are_matched_in_order() {
        let mut rewrites = AckRewrites::default();
        rewrites.unsubscribe_sent(65535, true);
        rewrites.unsubscribe_sent(65535, false);
        assert!(rewrites.unsuback_is_gateways(65535));
        assert!(!rewrites.unsuback_is_gateways(65535));
        assert!(!rewrites.unsuback_is_gateways(3));
    }
}
