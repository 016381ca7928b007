//! SASL exchanges as a client drives them over SaslAuthenticate (Kafka) or SASL frames
//! (AMQP): PLAIN (including an Event Hubs connection string given as the password),
//! SCRAM-SHA-256/512 client-first and client-final messages, and the OAUTHBEARER
//! initial response with an unsecured JWS. The first byte picks the mechanism; the rest
//! is up to three client tokens separated by 0xFF (never part of a UTF-8 token). In a
//! SCRAM client-final, `r=@` stands for the nonce the server chose, so the fuzzer gets
//! past the nonce check.
//!
//! Must never panic, never complete an exchange for a wrong password, and keep what it
//! answers small.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use runnel_security::sas::{self, Rights, SasKey, SharedAccessPolicy};
use runnel_security::sasl::{
    PlainUsers, ScramCredential, ScramCredentials, ScramMechanism, UnsecuredValidator,
};
use runnel_security::{SaslServer, SaslStep};

const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";

fn scram_credentials() -> Arc<dyn ScramCredentials> {
    static CREDS: OnceLock<Arc<HashMap<(String, ScramMechanism), ScramCredential>>> =
        OnceLock::new();
    CREDS
        .get_or_init(|| {
            let mut map = HashMap::new();
            for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
                let salt = b"fuzz-salt".to_vec();
                let cred = ScramCredential::with_salt(m, PASSWORD, salt, 4096);
                map.insert((USER.to_string(), m), cred);
            }
            Arc::new(map)
        })
        .clone()
}

fn plain_users() -> Arc<PlainUsers> {
    static USERS: OnceLock<Arc<PlainUsers>> = OnceLock::new();
    USERS
        .get_or_init(|| {
            let mut users = PlainUsers::new();
            users.insert(USER, PASSWORD);
            Arc::new(users)
        })
        .clone()
}

fn policies() -> &'static [SharedAccessPolicy] {
    static POLICIES: OnceLock<Vec<SharedAccessPolicy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        vec![SharedAccessPolicy {
            name: "RootManageSharedAccessKey".into(),
            hub: None,
            rights: Rights {
                send: true,
                listen: true,
                manage: true,
            },
            primary_key: SasKey::from_text("cHJpbWFyeQ=="),
            secondary_key: SasKey::from_text("c2Vjb25kYXJ5"),
        }]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut server = match selector % 4 {
        0 => {
            // The PLAIN password as an Event Hubs connection string.
            if let Some(password) = rest.split(|&b| b == 0).nth(2) {
                if let Ok(text) = std::str::from_utf8(password) {
                    let _ = sas::verify_connection_string(policies(), text, 1_700_000_000);
                }
            }
            SaslServer::plain(plain_users())
        }
        1 => SaslServer::scram(ScramMechanism::Sha256, scram_credentials()),
        2 => SaslServer::scram(ScramMechanism::Sha512, scram_credentials()),
        _ => SaslServer::oauthbearer(Arc::new(UnsecuredValidator::default())),
    };
    let mut nonce: Option<Vec<u8>> = None;
    for token in rest.split(|&b| b == 0xFF).take(3) {
        let token = match &nonce {
            Some(n) => replace(token, b"r=@", n),
            None => token.to_vec(),
        };
        let was_complete = server.is_complete();
        match server.evaluate(&token) {
            Ok(SaslStep::Challenge(challenge)) => {
                assert!(
                    challenge.len() < 4096,
                    "a challenge of {} bytes",
                    challenge.len()
                );
                nonce = challenge
                    .strip_prefix(b"r=")
                    .and_then(|c| c.split(|&b| b == b',').next())
                    .map(|n| [b"r=".as_slice(), n].concat());
            }
            Ok(SaslStep::Complete { principal, .. }) => {
                assert!(server.is_complete());
                // Only the real password gets in; OAUTHBEARER's unsecured tokens carry
                // any name.
                if selector % 4 != 3 {
                    assert_eq!(principal.name, USER);
                }
            }
            Err(error) => {
                // A failed step never completes the exchange (one sent after it
                // completed is refused; the broker closes the connection then).
                assert!(was_complete || !server.is_complete());
                assert!(error.client_message().len() < 1024);
                let _ = error.to_string();
            }
        }
    }
});

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len() + to.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}
