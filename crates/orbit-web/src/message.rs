//! The Phoenix Channels wire format, V2 JSON serializer (`vsn=2.0.0`,
//! `Phoenix.Socket.V2.JSONSerializer`): every frame is a JSON array
//! `[join_ref, ref, topic, event, payload]`.
//!
//! - a client message: `["1", "2", "room:lobby", "new_msg", {"body": "hi"}]`;
//! - a reply: `[join_ref, ref, topic, "phx_reply", {"status": "ok" | "error",
//!   "response": payload}]`;
//! - a push from a channel: `[join_ref, null, topic, event, payload]`;
//! - a broadcast: `[null, null, topic, event, payload]`.
//!
//! `join_ref` and `ref` are strings or `null` (phoenix.js sends strings; numbers are
//! accepted and kept as their text). Decoding is strict about the shape (five elements,
//! string topic and event) and says what was wrong; binary frames (the V2 binary
//! encoding) are not supported and are refused the same way.

use serde_json::Value;

/// A decoded client message (one frame).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The join reference of the channel the message is for (`null` allowed).
    pub join_ref: Option<String>,
    /// The message's reference, echoed in its reply (`null` for none).
    pub r#ref: Option<String>,
    /// The topic, e.g. `room:lobby`.
    pub topic: String,
    /// The event, e.g. `phx_join`, `heartbeat` or an application event.
    pub event: String,
    /// The payload (phoenix.js always sends an object).
    pub payload: Value,
}

/// Why a frame is not a V2 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all.
    #[error("the frame is not JSON: {0}")]
    Json(String),
    /// JSON, but not `[join_ref, ref, topic, event, payload]`.
    #[error("the frame is not a V2 message [join_ref, ref, topic, event, payload]: {0}")]
    Shape(&'static str),
}

fn reference(v: &Value) -> Result<Option<String>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(DecodeError::Shape(
            "join_ref and ref must be strings or null",
        )),
    }
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<Frame, DecodeError> {
    let v: Value = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Value::Array(mut a) = v else {
        return Err(DecodeError::Shape("not an array"));
    };
    if a.len() != 5 {
        return Err(DecodeError::Shape("not five elements"));
    }
    let payload = a.pop().unwrap_or(Value::Null);
    let event = match a.pop() {
        Some(Value::String(s)) => s,
        _ => return Err(DecodeError::Shape("the event must be a string")),
    };
    let topic = match a.pop() {
        Some(Value::String(s)) => s,
        _ => return Err(DecodeError::Shape("the topic must be a string")),
    };
    let r#ref = reference(&a[1])?;
    let join_ref = reference(&a[0])?;
    Ok(Frame {
        join_ref,
        r#ref,
        topic,
        event,
        payload,
    })
}

/// Encodes a frame: `[join_ref, ref, topic, event, payload]`.
pub fn encode(
    join_ref: Option<&str>,
    r#ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &Value,
) -> String {
    let arr = Value::Array(vec![
        join_ref.map_or(Value::Null, |s| Value::String(s.to_string())),
        r#ref.map_or(Value::Null, |s| Value::String(s.to_string())),
        Value::String(topic.to_string()),
        Value::String(event.to_string()),
        payload.clone(),
    ]);
    arr.to_string()
}

/// Encodes a reply: `[join_ref, ref, topic, "phx_reply", {"status", "response"}]`.
pub fn reply(
    join_ref: Option<&str>,
    r#ref: Option<&str>,
    topic: &str,
    ok: bool,
    response: &Value,
) -> String {
    let mut body = serde_json::Map::new();
    body.insert(
        "status".into(),
        Value::String(if ok { "ok" } else { "error" }.into()),
    );
    body.insert("response".into(), response.clone());
    encode(join_ref, r#ref, topic, "phx_reply", &Value::Object(body))
}

/// Encodes a broadcast: `[null, null, topic, event, payload]`.
pub fn broadcast(topic: &str, event: &str, payload: &Value) -> String {
    encode(None, None, topic, event, payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_what_phoenix_js_sends() {
        let m = decode(r#"["1","2","room:lobby","phx_join",{}]"#).unwrap();
        assert_eq!(m.join_ref.as_deref(), Some("1"));
        assert_eq!(m.r#ref.as_deref(), Some("2"));
        assert_eq!(m.topic, "room:lobby");
        assert_eq!(m.event, "phx_join");
        let hb = decode(r#"[null,"3","phoenix","heartbeat",{}]"#).unwrap();
        assert_eq!(hb.join_ref, None);
        let n = decode(r#"[1,2,"t","e",{"a":1}]"#).unwrap();
        assert_eq!(n.join_ref.as_deref(), Some("1"));
    }

    #[test]
    fn refuses_other_shapes_with_a_reason() {
        for bad in [
            "",
            "{",
            "{}",
            "[]",
            r#"[null,null,"t","e"]"#,
            r#"[null,null,1,"e",{}]"#,
            r#"[null,null,"t",null,{}]"#,
            r#"[{},null,"t","e",{}]"#,
            r#"[null,null,"t","e",{},6]"#,
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encodes_replies_pushes_and_broadcasts_as_v2() {
        assert_eq!(
            reply(Some("1"), Some("1"), "room:1", true, &json!({})),
            r#"["1","1","room:1","phx_reply",{"response":{},"status":"ok"}]"#
        );
        assert_eq!(
            broadcast("room:1", "msg", &json!({"a": 1})),
            r#"[null,null,"room:1","msg",{"a":1}]"#
        );
    }
}
