//! `type = "webhook"`: each event POSTed as JSON, version 1: the event's
//! own fields ([`crate::health::Event`]'s JSON, as `/api/events` streams
//! it) plus `instance` (`host`, `service`) saying which gateway sent it.
//!
//! With `secret_file`, the body is signed: `X-Healthgate-Signature:
//! sha256=<hex>` is the HMAC-SHA256 of the exact body bytes under the
//! file's key. A receiver computes the same over the raw body and compares
//! in constant time; the `id` and `time` in the body let it drop replays.

use bytes::Bytes;
use ring::hmac;

use super::Identity;
use crate::config::Secret;
use crate::health::Event;

/// The signature header.
pub const SIGNATURE: &str = "x-healthgate-signature";

/// The body for `event`.
pub fn body(event: &Event, identity: &Identity) -> Bytes {
    let mut json = serde_json::to_value(event).unwrap_or_default();
    if let Some(map) = json.as_object_mut() {
        map.insert(
            "instance".to_owned(),
            serde_json::json!({ "host": identity.host, "service": identity.service }),
        );
    }
    Bytes::from(serde_json::to_vec(&json).unwrap_or_default())
}

/// `sha256=<hex>` of `body` under `key`.
pub fn signature(key: &Secret, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.expose().as_bytes());
    let tag = hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2.
    #[test]
    fn the_signature_is_hmac_sha256_in_hex() {
        let sig = signature(&Secret::new("Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_body_is_the_event_and_who_sent_it() {
        let event = Event {
            id: 3,
            at: std::time::SystemTime::UNIX_EPOCH,
            kind: crate::health::EventKind::Reload {
                successful: false,
                message: "rejected".into(),
                removed: std::sync::Arc::new([]),
            },
        };
        let identity = Identity {
            host: "web-1".into(),
            service: "shop".into(),
        };
        let json: serde_json::Value = serde_json::from_slice(&body(&event, &identity)).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["type"], "reload");
        assert_eq!(json["successful"], false);
        assert_eq!(
            json["instance"],
            serde_json::json!({"host": "web-1", "service": "shop"})
        );
    }
}
