//! SASL against a server that misbehaves: it answers ApiVersions and SaslHandshake
//! properly, then sends SCRAM messages no real broker would. Each is an error, never a
//! panic or a hang, and the password appears in no error.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages as m;
use runnel_client::{
    Connection, ConnectionConfig, SaslCredentials, SaslMechanism, SecurityConfig, SecurityProtocol,
};
use runnel_protocol::api::{
    api_versions_response, decode_request, encode_response, RequestBody, ResponseBody, StrBytes,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A SASL server whose n-th SaslAuthenticate answer is `answers[n]` (auth bytes, or an
/// error code with a message when the bytes are `None`).
async fn serve(answers: Vec<Option<Vec<u8>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut answers = answers.into_iter();
        let mut nonce = String::new();
        loop {
            let Ok(size) = s.read_i32().await else { return };
            let mut frame = BytesMut::zeroed(size as usize);
            if s.read_exact(&mut frame).await.is_err() {
                return;
            }
            let request = decode_request(Bytes::from(frame)).unwrap();
            let body = match request.body {
                RequestBody::ApiVersions(_) => ResponseBody::ApiVersions(api_versions_response()),
                RequestBody::SaslHandshake(_) => ResponseBody::SaslHandshake(
                    m::SaslHandshakeResponse::default()
                        .with_mechanisms(vec![StrBytes::from_static_str("SCRAM-SHA-256")]),
                ),
                RequestBody::SaslAuthenticate(req) => match answers.next() {
                    Some(Some(bytes)) => {
                        // "r=+" stands for the client's nonce plus a server part.
                        let client = String::from_utf8_lossy(&req.auth_bytes).to_string();
                        if let Some(n) = client.split(',').find_map(|a| a.strip_prefix("r=")) {
                            nonce = n.to_string();
                        }
                        let text = String::from_utf8_lossy(&bytes)
                            .replace("r=+", &format!("r={nonce}srv"));
                        let bytes = if bytes.starts_with(b"r=+") {
                            text.into_bytes()
                        } else {
                            bytes
                        };
                        ResponseBody::SaslAuthenticate(
                            m::SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()),
                        )
                    }
                    Some(None) => ResponseBody::SaslAuthenticate(
                        m::SaslAuthenticateResponse::default()
                            .with_error_code(58)
                            .with_error_message(Some(StrBytes::from_static_str(
                                "Authentication failed",
                            ))),
                    ),
                    None => return,
                },
                _ => return,
            };
            let out = encode_response(&request.header, &body).unwrap();
            s.write_all(&out).await.unwrap();
        }
    });
    addr
}

fn config() -> ConnectionConfig {
    let creds = SaslCredentials {
        mechanism: SaslMechanism::ScramSha256,
        username: "carol".into(),
        password: "carol-secret".into(),
    };
    ConnectionConfig {
        request_timeout: Duration::from_secs(5),
        security: SecurityConfig::new(SecurityProtocol::SaslPlaintext, None, Some(creds)).unwrap(),
        ..ConnectionConfig::default()
    }
}

#[tokio::test]
async fn malformed_scram_messages_are_errors() {
    let huge_iterations = "r=X,s=c2FsdA==,i=999999999".to_string();
    let cases: Vec<Vec<Option<Vec<u8>>>> = vec![
        // server-first that does not parse, or asks for absurd work
        vec![Some(b"".to_vec())],
        vec![Some(vec![0xff; 64])],
        vec![Some(b"r=,s=,i=".to_vec())],
        vec![Some(huge_iterations.into_bytes())],
        vec![Some(b"r=+,s=c2FsdA==,i=999999999".to_vec())],
        vec![Some(b"r=+,s=c2FsdA==,i=-1".to_vec())],
        vec![Some(b"r=+,s=!!!,i=4096".to_vec())],
        // a server-final that proves nothing, or refuses
        vec![
            Some(b"r=+,s=c2FsdA==,i=4096".to_vec()),
            Some(b"v=AAAA".to_vec()),
        ],
        vec![
            Some(b"r=+,s=c2FsdA==,i=4096".to_vec()),
            Some(b"e=invalid-proof".to_vec()),
        ],
        vec![Some(b"r=+,s=c2FsdA==,i=4096".to_vec()), Some(b"".to_vec())],
        vec![Some(b"e=other-error".to_vec())],
        // a refusal
        vec![None],
    ];
    for answers in cases {
        let addr = serve(answers.clone()).await;
        let err = Connection::connect(&addr, config()).await.unwrap_err();
        let text = err.to_string();
        eprintln!("{text}");
        assert!(!text.contains("carol-secret"), "{text}");
        assert!(
            matches!(
                err,
                runnel_client::Error::Protocol(_) | runnel_client::Error::Kafka { .. }
            ),
            "{answers:?}: {err:?}"
        );
    }
}
