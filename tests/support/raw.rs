//! A raw Kafka connection for tests that check exact answers: one request at a time,
//! encoded and decoded with the broker's own protocol crate, with an optional SASL/PLAIN
//! login first.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use runnel_protocol::api::messages as m;
use runnel_protocol::api::{
    decode_response, encode_request, ApiKey, RequestBody, RequestHeader, ResponseBody, StrBytes,
};

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub struct RawClient {
    stream: TcpStream,
    correlation: i32,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("read timeout");
        RawClient {
            stream,
            correlation: 0,
        }
    }

    /// Connect and log in with SASL/PLAIN (SaslHandshake v1, SaslAuthenticate v2);
    /// panics if the login fails.
    pub fn plain(addr: SocketAddr, user: &str, password: &str) -> RawClient {
        let mut c = RawClient::connect(addr);
        match c.call(
            ApiKey::SaslHandshake,
            1,
            m::SaslHandshakeRequest::default()
                .with_mechanism(sb("PLAIN"))
                .into(),
        ) {
            Some(ResponseBody::SaslHandshake(r)) => assert_eq!(r.error_code, 0, "handshake"),
            other => panic!("SaslHandshake: {other:?}"),
        }
        let token = format!("\0{user}\0{password}");
        match c.call(
            ApiKey::SaslAuthenticate,
            2,
            m::SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from(token.into_bytes()))
                .into(),
        ) {
            Some(ResponseBody::SaslAuthenticate(r)) => {
                assert_eq!(r.error_code, 0, "login of {user}: {:?}", r.error_message)
            }
            other => panic!("SaslAuthenticate: {other:?}"),
        }
        c
    }

    /// Send a request and read its answer; `None` when the broker closed the connection.
    pub fn call(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: RequestBody,
    ) -> Option<ResponseBody> {
        self.correlation += 1;
        let header = RequestHeader {
            api_key,
            api_version: version,
            correlation_id: self.correlation,
            client_id: Some(sb("raw-client")),
        };
        let frame = encode_request(&header, &body).expect("encode");
        self.stream.write_all(&frame).ok()?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
        self.stream.read_exact(&mut buf).ok()?;
        let (correlation, body) = decode_response(&header, Bytes::from(buf)).expect("decode");
        assert_eq!(correlation, header.correlation_id);
        Some(body)
    }
}
