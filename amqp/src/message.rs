//! Event Hubs events and Kafka records, one for one, on the same partitions
//! (README "Using Runnel as Event Hubs" documents the mapping):
//!
//! - the record value is the event's single Data section, byte for byte;
//! - application properties become headers holding the AMQP-encoded value (with its
//!   type constructor), as Event Hubs' own Kafka endpoint shows them;
//! - the partition key becomes header `x-opt-partition-key` (AMQP-encoded);
//! - the rest of an AMQP message (header, properties, other annotations, a body that
//!   is not one Data section) goes AMQP-encoded into header `x-runnel-amqp`, which
//!   also marks the record as sent over AMQP;
//! - a Kafka record read over AMQP has its headers as binary application properties
//!   and its key as annotation `x-opt-kafka-key`.

// fe2o3 encodes a whole message only through this wrapper (what its links use).
use fe2o3_amqp_types::messaging::annotations::OwnedKey;
use fe2o3_amqp_types::messaging::message::__private::Serializable;
use fe2o3_amqp_types::messaging::message::DecodeIntoMessage;
use fe2o3_amqp_types::messaging::{
    ApplicationProperties, Batch, Body, Data, Message, MessageAnnotations,
};
use fe2o3_amqp_types::primitives::{Binary, SimpleValue, Symbol, Timestamp, Value};

pub const BATCH_FORMAT: u32 = 0x8001_3700;
pub const PARTITION_KEY: &str = "x-opt-partition-key";
pub const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
pub const OFFSET: &str = "x-opt-offset";
pub const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
pub const KAFKA_KEY: &str = "x-opt-kafka-key";
/// The AMQP sections a Kafka record has no place for.
pub const AMQP_SECTIONS: &str = "x-runnel-amqp";
/// Events in one batch delivery, at most (a 1 MiB batch of empty events is ~30,000).
const MAX_EVENTS: usize = 100_000;

pub type AmqpMessage = Message<Body<Value>>;

/// One event, as a Kafka record's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub partition_key: Option<String>,
}

fn symbol_key(name: &str) -> OwnedKey {
    OwnedKey::Symbol(Symbol::from(name))
}

fn annotation<'a>(annotations: &'a Option<MessageAnnotations>, name: &str) -> Option<&'a Value> {
    annotations.as_ref()?.0.get(&symbol_key(name))
}

/// The partition key of a message (a batch's envelope carries its events' key).
pub fn partition_key(message: &AmqpMessage) -> Option<String> {
    match annotation(&message.message_annotations, PARTITION_KEY)? {
        Value::String(s) => Some(s.clone()),
        Value::Symbol(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

pub fn decode(bytes: &[u8]) -> Result<AmqpMessage, String> {
    <Body<Value> as DecodeIntoMessage>::decode_message_from_reader(
        serde_amqp::read::SliceReader::new(bytes),
    )
    .map_err(|e| format!("malformed message in a batch: {e}"))
}

pub fn encode(message: &AmqpMessage) -> Result<Vec<u8>, String> {
    serde_amqp::to_vec(&Serializable(message)).map_err(|e| e.to_string())
}

/// The events of a delivery: a batch (format 0x80013700) holds one encoded message in
/// each Data section; any other format is one event.
pub fn events(message: AmqpMessage, format: Option<u32>) -> Result<Vec<Event>, String> {
    if format == Some(BATCH_FORMAT) {
        let envelope_key = partition_key(&message);
        let Body::Data(sections) = message.body else {
            return Err("a batch's body must be Data sections".to_string());
        };
        if sections.len() > MAX_EVENTS {
            return Err(format!("a batch holds at most {MAX_EVENTS} events"));
        }
        let mut out = Vec::with_capacity(sections.len());
        for Data(bytes) in sections.into_inner() {
            let mut e = event(decode(&bytes)?)?;
            if e.partition_key.is_none() {
                e.partition_key = envelope_key.clone();
            }
            out.push(e);
        }
        Ok(out)
    } else {
        Ok(vec![event(message)?])
    }
}

fn encoded<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, String> {
    serde_amqp::to_vec(value).map_err(|e| e.to_string())
}

/// One AMQP message as a record's value and headers.
pub fn event(mut message: AmqpMessage) -> Result<Event, String> {
    let partition_key = partition_key(&message);
    let mut headers = Vec::new();
    if let Some(app) = message.application_properties.take() {
        for (k, v) in app.0.iter() {
            headers.push((k.clone(), encoded(v)?));
        }
    }
    if let Some(key) = &partition_key {
        headers.push((
            PARTITION_KEY.to_string(),
            encoded(&Value::String(key.clone()))?,
        ));
    }
    // The service's own annotations are not the sender's to keep.
    if let Some(ann) = message.message_annotations.as_mut() {
        ann.0.as_inner_mut().retain(|k, _| match k {
            OwnedKey::Symbol(s) => !s.as_str().starts_with("x-opt-"),
            _ => true,
        });
        if ann.0.is_empty() {
            message.message_annotations = None;
        }
    }
    message.delivery_annotations = None;
    message.footer = None;
    let body = std::mem::replace(&mut message.body, Body::Empty);
    let value = match body {
        Body::Data(mut sections) if sections.len() == 1 => sections
            .pop()
            .map(|Data(b)| b.into_vec())
            .unwrap_or_default(),
        other => {
            message.body = other;
            Vec::new()
        }
    };
    headers.push((AMQP_SECTIONS.to_string(), encode(&message)?));
    Ok(Event {
        value,
        headers,
        partition_key,
    })
}

/// A stored record as the AMQP message a consumer receives.
pub fn from_record(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&[u8], Option<&[u8]>)],
    offset: i64,
    timestamp: i64,
) -> AmqpMessage {
    let sections = headers
        .iter()
        .rev()
        .find(|(k, _)| *k == AMQP_SECTIONS.as_bytes())
        .and_then(|(_, v)| *v)
        .and_then(|v| decode(v).ok());
    let from_amqp = sections.is_some();
    let mut message = sections.unwrap_or_else(|| Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: None,
        application_properties: None,
        body: Body::Empty,
        footer: None,
    });
    let mut app = ApplicationProperties::default();
    let mut key_annotation = None;
    for (k, v) in headers {
        let name = String::from_utf8_lossy(k).into_owned();
        if name == AMQP_SECTIONS {
            continue;
        }
        let raw = v.unwrap_or_default();
        if name == PARTITION_KEY {
            key_annotation = match serde_amqp::from_slice::<Value>(raw) {
                Ok(Value::String(s)) => Some(s),
                _ => Some(String::from_utf8_lossy(raw).into_owned()),
            };
            continue;
        }
        let typed = if from_amqp {
            serde_amqp::from_slice::<SimpleValue>(raw).ok()
        } else {
            None
        };
        let value = typed.unwrap_or_else(|| SimpleValue::Binary(raw.to_vec().into()));
        // With duplicate keys the last wins.
        app.0.insert(name, value);
    }
    if !app.0.is_empty() {
        message.application_properties = Some(app);
    }
    if matches!(message.body, Body::Empty) || value.is_some() {
        message.body = Body::Data(Batch::new(vec![Data(Binary::from(
            value.unwrap_or_default().to_vec(),
        ))]));
    }
    let mut ann = message.message_annotations.take().unwrap_or_default();
    ann.0
        .insert(symbol_key(SEQUENCE_NUMBER), Value::Long(offset));
    ann.0
        .insert(symbol_key(OFFSET), Value::String(offset.to_string()));
    ann.0.insert(
        symbol_key(ENQUEUED_TIME),
        Value::Timestamp(Timestamp::from_milliseconds(timestamp)),
    );
    if let Some(k) = key_annotation {
        ann.0.insert(symbol_key(PARTITION_KEY), Value::String(k));
    }
    if let Some(k) = key {
        ann.0
            .insert(symbol_key(KAFKA_KEY), Value::Binary(k.to_vec().into()));
    }
    message.message_annotations = Some(ann);
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp_types::messaging::Properties;

    fn message(body: &[u8]) -> AmqpMessage {
        Message::builder()
            .properties(Properties {
                content_type: Some(Symbol::from("application/json")),
                ..Default::default()
            })
            .application_properties(
                ApplicationProperties::builder()
                    .insert("n", SimpleValue::Int(7))
                    .insert("s", SimpleValue::String("x".into()))
                    .build(),
            )
            .message_annotations(
                MessageAnnotations::builder()
                    .insert(symbol_key(PARTITION_KEY), Value::String("k1".into()))
                    .build(),
            )
            .body(Body::Data(Batch::new(vec![Data(Binary::from(
                body.to_vec(),
            ))])))
            .build()
    }

    #[test]
    fn an_event_round_trips_through_a_record() {
        let e = event(message(b"hello")).unwrap();
        assert_eq!(e.value, b"hello");
        assert_eq!(e.partition_key.as_deref(), Some("k1"));
        let n = e.headers.iter().find(|(k, _)| k == "n").unwrap();
        // An AMQP int: constructor 0x54 (smallint) or 0x71.
        assert!(n.1[0] == 0x54 || n.1[0] == 0x71, "{:?}", n.1);
        let headers: Vec<(&[u8], Option<&[u8]>)> = e
            .headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), Some(v.as_slice())))
            .collect();
        let back = from_record(None, Some(&e.value), &headers, 42, 1000);
        let app = back.application_properties.as_ref().unwrap();
        assert_eq!(app.0.get("n"), Some(&SimpleValue::Int(7)));
        assert_eq!(app.0.get("s"), Some(&SimpleValue::String("x".into())));
        assert_eq!(
            back.properties.as_ref().unwrap().content_type,
            Some(Symbol::from("application/json"))
        );
        let ann = back.message_annotations.as_ref().unwrap();
        assert_eq!(
            ann.0.get(&symbol_key(SEQUENCE_NUMBER)),
            Some(&Value::Long(42))
        );
        assert_eq!(
            ann.0.get(&symbol_key(OFFSET)),
            Some(&Value::String("42".into()))
        );
        assert_eq!(
            ann.0.get(&symbol_key(PARTITION_KEY)),
            Some(&Value::String("k1".into()))
        );
        match &back.body {
            Body::Data(d) => assert_eq!(d[0].0.as_slice(), b"hello"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_batch_unpacks_into_its_events() {
        let inner: Vec<Data> = [b"a".as_slice(), b"bb"]
            .iter()
            .map(|b| Data(Binary::from(encode(&message(b)).unwrap())))
            .collect();
        let envelope: AmqpMessage = Message::builder()
            .body(Body::Data(Batch::new(inner)))
            .build();
        let events = events(envelope, Some(BATCH_FORMAT)).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].value, b"bb");
    }

    #[test]
    fn a_kafka_record_reads_as_binary_properties() {
        let headers: Vec<(&[u8], Option<&[u8]>)> = vec![(b"h", Some(b"v"))];
        let m = from_record(Some(b"key"), Some(b"val"), &headers, 3, 5);
        let app = m.application_properties.unwrap();
        assert_eq!(
            app.0.get("h"),
            Some(&SimpleValue::Binary(b"v".to_vec().into()))
        );
        let ann = m.message_annotations.unwrap();
        assert_eq!(
            ann.0.get(&symbol_key(KAFKA_KEY)),
            Some(&Value::Binary(b"key".to_vec().into()))
        );
    }

    /// The fuzzer's finds in serde_amqp (vendor/serde_amqp.patch): a map with an odd item
    /// count underflowed its counter, and a 4-byte length allocated what it claimed
    /// (here about 3 GB) before reading.
    #[test]
    fn malformed_sections_are_errors_without_panic_or_allocation() {
        assert!(decode(&[0x00, 0x53, 0x72, 0xc1, 0x01, 0x01]).is_err());
        assert!(decode(&[0x00, 0x53, 0x77, 0xb3, 0xb3, 0xb3, 0xb3, 0xb3]).is_err());
        assert!(decode(&[0x00, 0x53, 0x77, 0xb1, 0xff, 0xff, 0xff, 0xf0, b'x']).is_err());
    }

    /// fuzz/ amqp_batch's find: a map8 whose size byte is 0, smaller than its own count
    /// byte, underflowed in serde_amqp (a panic in a debug build, a wrapped length in a
    /// release one). vendor/serde_amqp.patch checks every such length.
    #[test]
    fn a_length_below_its_count_field_is_an_error() {
        // message-annotations: map8, size 0.
        assert!(decode(&[0x00, 0x53, 0x72, 0xc1, 0x00, 0x00]).is_err());
        // The same for a map32 (application-properties), size 0.
        assert!(decode(&[0x00, 0x53, 0x74, 0xd1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn garbage_in_a_batch_is_an_error() {
        let envelope: AmqpMessage = Message::builder()
            .body(Body::Data(Batch::new(vec![Data(Binary::from(vec![
                0xff, 0x00, 0x13,
            ]))])))
            .build();
        assert!(events(envelope, Some(BATCH_FORMAT)).is_err());
    }
}
