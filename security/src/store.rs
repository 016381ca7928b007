//! The durable identity state: one JSON file in the data directory
//! ([`SECURITY_STORE_FILE`]), rewritten whole (write-temp, fsync, rename, fsync-dir)
//! on every change, so a crash leaves the old file or the new one. Changes are rare
//! (an operator adding a user); a log would be overkill, as for the topic registry.
//!
//! It holds SCRAM credentials per (user, mechanism): salt, stored key, server key and
//! iterations, as Kafka's `UserScramCredentialRecord` does, never a password; the ACLs;
//! and Event Hubs' shared access policies with their keys (an HMAC needs the key
//! itself, so the file is readable by its owner only); and client quotas (KIP-546: an
//! entity, type to name or the default, with its values). The file carries a format
//! version and unknown fields are refused, so an older broker never reads (and then
//! rewrites without) sections it does not know.
//!
//! The broker and `runnel sas` on the same host may both change it: a change holds an
//! exclusive lock on a lock file beside it and starts from what the file holds, and the
//! broker reloads a file another process rewrote ([`SecurityStore::refresh`]).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use runnel_storage::checkpoint;
use runnel_storage::layout::SECURITY_STORE_FILE;
use serde::{Deserialize, Serialize};

use crate::acl::{AclBinding, AclFilter, Acls};
use crate::poison::or_stop;
use crate::sas::{Rights, SasKey, SharedAccessPolicy};
use crate::sasl::scram::{ScramCredential, ScramCredentials, ScramMechanism};

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
struct Versioned {
    version: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    version: u32,
    #[serde(default)]
    scram_credentials: Vec<ScramEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    client_quotas: Vec<ClientQuotaEntry>,
    #[serde(default)]
    acls: Vec<AclBinding>,
    #[serde(default)]
    shared_access_policies: Vec<SharedAccessPolicy>,
}

/// One client quota entity (KIP-546) and its values, as Kafka's `ClientQuotaRecord`s
/// hold them: entity type (`user`, `client-id`, `ip`) to name, `null` for the default.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientQuotaEntry {
    entity: BTreeMap<String, Option<String>>,
    values: BTreeMap<String, f64>,
}

/// A client quota entity: entity type to name, `None` for the `<default>` entity.
pub type QuotaEntity = BTreeMap<String, Option<String>>;

/// A quota entity's values, by quota key (`producer_byte_rate`, ...).
pub type QuotaValues = BTreeMap<String, f64>;

/// One entity's change in AlterClientQuotas: per key, a new value or `None` to remove it.
pub type QuotaAlteration = (QuotaEntity, BTreeMap<String, Option<f64>>);

/// One credential; the byte strings in base64.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScramEntry {
    user: String,
    mechanism: ScramMechanism,
    salt: String,
    stored_key: String,
    server_key: String,
    iterations: u32,
}

#[derive(Debug, Clone, Default)]
struct State {
    scram: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    client_quotas: BTreeMap<QuotaEntity, QuotaValues>,
    acls: Acls,
    policies: Vec<SharedAccessPolicy>,
}

/// One (mechanism, iterations) of a user, as DescribeUserScramCredentials lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScramCredentialInfo {
    pub mechanism: ScramMechanism,
    pub iterations: u32,
}

/// The security store. Share it as an `Arc<SecurityStore>`: reads take a read lock and
/// never wait for the disk; writes are serialized, are blocking file I/O (run them off
/// the async runtime), and become visible only once the file holds them.
#[derive(Debug)]
pub struct SecurityStore {
    dir: PathBuf,
    state: RwLock<State>,
    /// Held across a whole change (copy, persist, publish) so changes do not interleave;
    /// holds the stamp of the file as this process last read or wrote it.
    writer: Mutex<Option<Stamp>>,
}

/// A file's modification time and length: when either differs from what this process
/// last saw, another process rewrote it.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn read_state(path: &Path) -> io::Result<State> {
    match std::fs::read(path) {
        Ok(bytes) => parse(path, &bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

impl SecurityStore {
    /// The store in data directory `dir`; empty if the file does not exist yet (it is
    /// written at the first change). A file that cannot be read is an error naming it.
    pub fn open(dir: &Path) -> io::Result<SecurityStore> {
        let path = dir.join(SECURITY_STORE_FILE);
        let seen = stamp(&path);
        let state = read_state(&path)?;
        Ok(SecurityStore {
            dir: dir.to_path_buf(),
            state: RwLock::new(state),
            writer: Mutex::new(seen),
        })
    }

    /// Reload the file if another process rewrote it since this one last read or wrote
    /// it. A file that no longer parses keeps the state in memory (and is an error).
    /// Blocking: a stat, and a read when it changed.
    pub fn refresh(&self) -> io::Result<bool> {
        let path = self.path();
        let mut seen = or_stop(self.writer.lock(), "security store writer");
        let now = stamp(&path);
        if now == *seen {
            return Ok(false);
        }
        let state = read_state(&path)?;
        *or_stop(self.state.write(), "security store") = state;
        *seen = now;
        Ok(true)
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(SECURITY_STORE_FILE)
    }

    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<ScramCredential> {
        let state = or_stop(self.state.read(), "security store");
        state.scram.get(user)?.get(&mechanism).cloned()
    }

    /// Add or replace a user's credential for a mechanism. Refuses (InvalidInput, with
    /// Kafka's messages) an empty user, iterations outside Kafka's bounds and keys of
    /// the wrong length, so that nothing is stored that the server would refuse.
    pub fn upsert_scram(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    ) -> io::Result<()> {
        check_credential(user, mechanism, &credential)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.change(|state| {
            state
                .scram
                .entry(user.to_string())
                .or_default()
                .insert(mechanism, credential);
            true
        })
        .map(|_| ())
    }

    /// Remove a user's credential for a mechanism; false (and no write) if there was
    /// none, which AlterUserScramCredentials reports as RESOURCE_NOT_FOUND.
    pub fn delete_scram(&self, user: &str, mechanism: ScramMechanism) -> io::Result<bool> {
        self.change(|state| {
            let Some(by_mechanism) = state.scram.get_mut(user) else {
                return false;
            };
            let removed = by_mechanism.remove(&mechanism).is_some();
            if by_mechanism.is_empty() {
                state.scram.remove(user);
            }
            removed
        })
    }

    /// Per user, the mechanisms and iteration counts of their credentials:
    /// DescribeUserScramCredentials. `None` lists every user; a requested user without
    /// credentials is absent from the answer (RESOURCE_NOT_FOUND for the caller).
    pub fn describe_scram(
        &self,
        users: Option<&[String]>,
    ) -> BTreeMap<String, Vec<ScramCredentialInfo>> {
        let state = or_stop(self.state.read(), "security store");
        let describe = |by_mechanism: &BTreeMap<ScramMechanism, ScramCredential>| {
            by_mechanism
                .iter()
                .map(|(m, c)| ScramCredentialInfo {
                    mechanism: *m,
                    iterations: c.iterations,
                })
                .collect()
        };
        match users {
            None => state
                .scram
                .iter()
                .map(|(u, c)| (u.clone(), describe(c)))
                .collect(),
            Some(users) => users
                .iter()
                .filter_map(|u| state.scram.get(u).map(|c| (u.clone(), describe(c))))
                .collect(),
        }
    }

    /// AlterUserScramCredentials: every upsert and deletion in one write, or none.
    /// Deleting a credential that is not there is skipped (the caller checked).
    pub fn alter_scram(
        &self,
        upserts: Vec<ScramUpsert>,
        deletions: Vec<(String, ScramMechanism)>,
    ) -> io::Result<()> {
        for u in &upserts {
            check_credential(&u.user, u.mechanism, &u.credential)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
        self.change(|state| {
            let mut changed = false;
            for (user, mechanism) in &deletions {
                if let Some(by_mechanism) = state.scram.get_mut(user) {
                    changed |= by_mechanism.remove(mechanism).is_some();
                    if by_mechanism.is_empty() {
                        state.scram.remove(user);
                    }
                }
            }
            for u in upserts {
                state
                    .scram
                    .entry(u.user)
                    .or_default()
                    .insert(u.mechanism, u.credential);
                changed = true;
            }
            changed
        })
        .map(|_| ())
    }

    /// Every client quota entity with its values (entities without values are gone).
    pub fn client_quotas(&self) -> BTreeMap<QuotaEntity, QuotaValues> {
        or_stop(self.state.read(), "security store")
            .client_quotas
            .clone()
    }

    /// AlterClientQuotas: every entity's sets and removals in one write, or none. The
    /// caller validated entities, keys and values; non-finite values are refused here so
    /// the file always parses.
    pub fn alter_client_quotas(&self, alterations: Vec<QuotaAlteration>) -> io::Result<()> {
        if alterations
            .iter()
            .any(|(_, ops)| ops.values().flatten().any(|v| !v.is_finite()))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a quota value must be a finite number",
            ));
        }
        self.change(|state| {
            let mut changed = false;
            for (entity, ops) in alterations {
                let values = state.client_quotas.entry(entity.clone()).or_default();
                for (key, value) in ops {
                    changed |= match value {
                        Some(v) => values.insert(key, v) != Some(v),
                        None => values.remove(&key).is_some(),
                    };
                }
                if values.is_empty() {
                    state.client_quotas.remove(&entity);
                }
            }
            changed
        })
        .map(|_| ())
    }

    /// Apply `edit` to a copy; if it changed something, persist the copy and only then
    /// publish it, so a change that did not reach the disk is never seen. An error means
    /// "not known to be durable": after a failed directory fsync the renamed file may
    /// still be there at the next start (the next successful change rewrites it from
    /// memory).
    fn change(&self, edit: impl FnOnce(&mut State) -> bool) -> io::Result<bool> {
        let mut seen = or_stop(self.writer.lock(), "security store writer");
        // The lock file, not the store itself, which is replaced by a rename.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(format!("{SECURITY_STORE_FILE}.lock")))?;
        lock.lock()?;
        let path = self.path();
        let on_disk = stamp(&path);
        let mut next = if on_disk != *seen {
            read_state(&path)?
        } else {
            or_stop(self.state.read(), "security store").clone()
        };
        if !edit(&mut next) {
            return Ok(false);
        }
        let bytes = serialize(&next)?;
        let written = checkpoint::write_private(&self.dir, SECURITY_STORE_FILE, &bytes);
        // Even after a failure: a file this change left behind (renamed, its directory
        // not synced) is not taken for another process's change; the next change
        // rewrites it from memory.
        *seen = stamp(&path);
        written?;
        *or_stop(self.state.write(), "security store") = next;
        Ok(true)
    }

    /// Run `f` over the ACLs in force.
    pub fn with_acls<R>(&self, f: impl FnOnce(&Acls) -> R) -> R {
        f(&or_stop(self.state.read(), "security store").acls)
    }

    /// CreateAcls: add the bindings in one write (those already there are kept as
    /// they are). The caller validated them.
    pub fn create_acls(&self, bindings: Vec<AclBinding>) -> io::Result<()> {
        self.change(|state| {
            let mut changed = false;
            for b in bindings {
                changed |= state.acls.insert(b);
            }
            changed
        })
        .map(|_| ())
    }

    /// DeleteAcls: remove what each filter matches, in one write; per filter, the
    /// bindings it removed (a binding two filters match is reported by the first).
    pub fn delete_acls(&self, filters: &[AclFilter]) -> io::Result<Vec<Vec<AclBinding>>> {
        let mut removed = Vec::new();
        self.change(|state| {
            for f in filters {
                removed.push(state.acls.remove_matching(f));
            }
            removed.iter().any(|r| !r.is_empty())
        })?;
        Ok(removed)
    }

    /// The shared access policies, namespace-level first.
    pub fn shared_access_policies(&self) -> Vec<SharedAccessPolicy> {
        or_stop(self.state.read(), "security store")
            .policies
            .clone()
    }

    /// Run `f` over the shared access policies (for a login; no copy of the keys).
    pub fn with_policies<R>(&self, f: impl FnOnce(&[SharedAccessPolicy]) -> R) -> R {
        f(&or_stop(self.state.read(), "security store").policies)
    }

    /// Add a policy with fresh keys, or replace the rights of one with this name and
    /// scope (its keys stay). Returns the policy as stored.
    pub fn put_policy(
        &self,
        name: &str,
        hub: Option<&str>,
        rights: Rights,
    ) -> io::Result<SharedAccessPolicy> {
        check_policy_name(name, hub).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let fresh = SharedAccessPolicy {
            name: name.to_string(),
            hub: hub.map(str::to_string),
            rights: rights.normalized(),
            primary_key: SasKey::generate()?,
            secondary_key: SasKey::generate()?,
        };
        let mut stored = None;
        self.change(|state| {
            let found = state
                .policies
                .iter_mut()
                .find(|p| p.name == name && p.hub.as_deref() == hub);
            let policy = match found {
                Some(p) => {
                    p.rights = fresh.rights;
                    p.clone()
                }
                None => {
                    state.policies.push(fresh.clone());
                    fresh.clone()
                }
            };
            state
                .policies
                .sort_by(|a, b| (&a.hub, &a.name).cmp(&(&b.hub, &b.name)));
            stored = Some(policy);
            true
        })?;
        stored.ok_or_else(|| io::Error::other("the policy was not stored"))
    }

    /// Make a policy exist with these rights and this primary key, keeping its
    /// secondary key (the Event Hubs emulator's drop-in mode, whose documented
    /// connection string carries a fixed key).
    pub fn ensure_policy(
        &self,
        name: &str,
        hub: Option<&str>,
        rights: Rights,
        primary_key: SasKey,
    ) -> io::Result<()> {
        check_policy_name(name, hub).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let secondary = SasKey::generate()?;
        self.change(|state| {
            let rights = rights.normalized();
            match state
                .policies
                .iter_mut()
                .find(|p| p.name == name && p.hub.as_deref() == hub)
            {
                Some(p) if p.rights == rights && p.primary_key.expose() == primary_key.expose() => {
                    false
                }
                Some(p) => {
                    p.rights = rights;
                    p.primary_key = primary_key.clone();
                    true
                }
                None => {
                    state.policies.push(SharedAccessPolicy {
                        name: name.to_string(),
                        hub: hub.map(str::to_string),
                        rights,
                        primary_key: primary_key.clone(),
                        secondary_key: secondary.clone(),
                    });
                    state
                        .policies
                        .sort_by(|a, b| (&a.hub, &a.name).cmp(&(&b.hub, &b.name)));
                    true
                }
            }
        })
        .map(|_| ())
    }

    /// Remove a policy; false if there is none with this name and scope.
    pub fn remove_policy(&self, name: &str, hub: Option<&str>) -> io::Result<bool> {
        self.change(|state| {
            let before = state.policies.len();
            state
                .policies
                .retain(|p| !(p.name == name && p.hub.as_deref() == hub));
            state.policies.len() != before
        })
    }

    /// Replace a policy's primary or secondary key with a fresh one (the other keeps
    /// working, so clients move over without downtime).
    pub fn renew_policy_key(
        &self,
        name: &str,
        hub: Option<&str>,
        secondary: bool,
    ) -> io::Result<Option<SharedAccessPolicy>> {
        let key = SasKey::generate()?;
        let mut renewed = None;
        self.change(|state| {
            let Some(p) = state
                .policies
                .iter_mut()
                .find(|p| p.name == name && p.hub.as_deref() == hub)
            else {
                return false;
            };
            if secondary {
                p.secondary_key = key;
            } else {
                p.primary_key = key;
            }
            renewed = Some(p.clone());
            true
        })?;
        Ok(renewed)
    }
}

impl ScramCredentials for SecurityStore {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        SecurityStore::scram_credential(self, user, mechanism)
    }
}

fn check_credential(
    user: &str,
    mechanism: ScramMechanism,
    credential: &ScramCredential,
) -> Result<(), String> {
    if user.is_empty() {
        return Err("Username must not be empty".into());
    }
    mechanism.check_iterations(credential.iterations)?;
    if credential.stored_key.len() != mechanism.hash_len()
        || credential.server_key.len() != mechanism.hash_len()
    {
        return Err(format!(
            "{mechanism} keys must be {} bytes",
            mechanism.hash_len()
        ));
    }
    Ok(())
}

/// Event Hubs' rule for policy names: 1 to 256 of letters, digits, `.`, `-` and `_`;
/// hub names as Kafka topic names.
fn check_policy_name(name: &str, hub: Option<&str>) -> Result<(), String> {
    let ok = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if !ok(name, 256) {
        return Err(format!(
            "the policy name {:?} must be 1 to 256 letters, digits, '.', '-' or '_'",
            name
        ));
    }
    if let Some(hub) = hub {
        if !ok(hub, 249) {
            return Err(format!("the hub name {hub:?} is not a valid topic name"));
        }
    }
    Ok(())
}

fn serialize(state: &State) -> io::Result<Vec<u8>> {
    let scram_credentials = state
        .scram
        .iter()
        .flat_map(|(user, by_mechanism)| {
            by_mechanism.iter().map(move |(m, c)| ScramEntry {
                user: user.clone(),
                mechanism: *m,
                salt: STANDARD.encode(&c.salt),
                stored_key: STANDARD.encode(&c.stored_key),
                server_key: STANDARD.encode(&c.server_key),
                iterations: c.iterations,
            })
        })
        .collect();
    let client_quotas = state
        .client_quotas
        .iter()
        .map(|(entity, values)| ClientQuotaEntry {
            entity: entity.clone(),
            values: values.clone(),
        })
        .collect();
    let file = StoreFile {
        version: FORMAT_VERSION,
        scram_credentials,
        client_quotas,
        acls: state.acls.iter().cloned().collect(),
        shared_access_policies: state.policies.clone(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> io::Result<State> {
    let versioned: Versioned = serde_json::from_slice(bytes).map_err(|e| invalid(path, e))?;
    if versioned.version != FORMAT_VERSION {
        return Err(invalid(
            path,
            format!(
                "unknown format version {} (this broker reads version {FORMAT_VERSION})",
                versioned.version
            ),
        ));
    }
    let file: StoreFile = serde_json::from_slice(bytes).map_err(|e| invalid(path, e))?;
    let mut state = State::default();
    for b in &file.acls {
        crate::acl::validate(b).map_err(|e| invalid(path, format!("the ACL {b}: {e}")))?;
    }
    state.acls = Acls::new(file.acls);
    for p in &file.shared_access_policies {
        check_policy_name(&p.name, p.hub.as_deref())
            .map_err(|e| invalid(path, format!("shared access policy {:?}: {e}", p.name)))?;
        let twins = file
            .shared_access_policies
            .iter()
            .filter(|q| q.name == p.name && q.hub == p.hub)
            .count();
        if twins > 1 {
            return Err(invalid(
                path,
                format!("two shared access policies {:?}", p.name),
            ));
        }
    }
    state.policies = file.shared_access_policies;
    for entry in file.scram_credentials {
        let decode = |field: &str, value: &str| {
            STANDARD.decode(value).map_err(|e| {
                invalid(
                    path,
                    format!("the {field} of user {:?} is not base64: {e}", entry.user),
                )
            })
        };
        let credential = ScramCredential {
            salt: decode("salt", &entry.salt)?,
            stored_key: decode("stored_key", &entry.stored_key)?,
            server_key: decode("server_key", &entry.server_key)?,
            iterations: entry.iterations,
        };
        check_credential(&entry.user, entry.mechanism, &credential).map_err(|e| {
            invalid(
                path,
                format!(
                    "the {} credential of user {:?}: {e}",
                    entry.mechanism, entry.user
                ),
            )
        })?;
        let previous = state
            .scram
            .entry(entry.user.clone())
            .or_default()
            .insert(entry.mechanism, credential);
        if previous.is_some() {
            return Err(invalid(
                path,
                format!(
                    "two {} credentials for user {:?}",
                    entry.mechanism, entry.user
                ),
            ));
        }
    }
    for entry in file.client_quotas {
        if entry.entity.is_empty() || entry.values.is_empty() {
            return Err(invalid(
                path,
                "a client quota entry without entity or values",
            ));
        }
        if let Some((key, v)) = entry.values.iter().find(|(_, v)| !v.is_finite()) {
            return Err(invalid(path, format!("client quota {key} is {v}")));
        }
        if state
            .client_quotas
            .insert(entry.entity.clone(), entry.values)
            .is_some()
        {
            return Err(invalid(
                path,
                format!("two client quota entries for {:?}", entry.entity),
            ));
        }
    }
    Ok(state)
}

/// One credential to add at bootstrap, from [`parse_add_scram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUpsert {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub credential: ScramCredential,
}

/// Kafka's `kafka-storage format --add-scram` arguments, several separated by `;`:
/// `SCRAM-SHA-256=[name=alice,password=alice-secret]`, with optional `iterations=`
/// (default 4096) and `salt=` (base64), or `salt=` with `saltedpassword=` (base64)
/// instead of the password. Values may be in double quotes. As in Kafka, values cannot
/// hold `,`; a `;` splits entries only after a `]`. The messages are Kafka's
/// (`ScramParser`) and never include a password.
pub fn parse_add_scram(spec: &str) -> Result<Vec<ScramUpsert>, String> {
    let mut upserts = Vec::new();
    let mut pending = String::new();
    for piece in spec.split(';') {
        if !pending.is_empty() {
            pending.push(';');
        }
        pending.push_str(piece);
        if pending.trim_end().ends_with(']') || pending.trim().is_empty() {
            if !pending.trim().is_empty() {
                upserts.push(parse_one(&pending)?);
            }
            pending.clear();
        }
    }
    if !pending.trim().is_empty() {
        upserts.push(parse_one(&pending)?);
    }
    Ok(upserts)
}

fn parse_one(argument: &str) -> Result<ScramUpsert, String> {
    let argument = argument.trim();
    let Some((mechanism, config)) = argument.split_once('=') else {
        return Err(format!(
            "Failed to find equals sign in SCRAM argument '{}'",
            redact(argument)
        ));
    };
    let mechanism = ScramMechanism::from_name(mechanism)
        .ok_or_else(|| format!("The add-scram mechanism {mechanism} is not supported."))?;
    let config = config
        .strip_prefix('[')
        .ok_or("Expected configuration string to start with [")?
        .strip_suffix(']')
        .ok_or("Expected configuration string to end with ]")?;
    let mut components = BTreeMap::new();
    for component in config.split(',') {
        let (key, value) = component
            .split_once('=')
            // Kafka's message shows the component, which may be part of a password
            // that held a `,`.
            .ok_or("No equals sign found in SCRAM component (values cannot hold ',')")?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        components.insert(key.to_string(), value.to_string());
    }
    let user = components
        .remove("name")
        .ok_or("You must supply 'name' to add-scram")?;
    let salt = match components.remove("salt") {
        None => None,
        Some(s) => Some(
            STANDARD
                .decode(&s)
                .map_err(|_| format!("Failed to decode given salt: {s}"))?,
        ),
    };
    let iterations = match components.remove("iterations") {
        None => ScramMechanism::DEFAULT_ITERATIONS,
        Some(i) => i
            .parse::<u32>()
            .map_err(|_| format!("Failed to parse iterations count: {i}"))?,
    };
    let password = components.remove("password");
    let salted = components.remove("saltedpassword");
    if !components.is_empty() {
        let unknown: Vec<&str> = components.keys().map(String::as_str).collect();
        return Err(format!(
            "Unknown SCRAM configurations: {}",
            unknown.join(", ")
        ));
    }
    if iterations < ScramMechanism::MIN_ITERATIONS {
        return Err(format!(
            "The 'iterations' value must be >= {} for add-scram using {mechanism}",
            ScramMechanism::MIN_ITERATIONS
        ));
    }
    if iterations > ScramMechanism::MAX_ITERATIONS {
        return Err(format!(
            "The 'iterations' value must be <= {} for add-scram using {mechanism}",
            ScramMechanism::MAX_ITERATIONS
        ));
    }
    let credential = match (password, salted, salt) {
        (Some(password), _, Some(salt)) => {
            ScramCredential::with_salt(mechanism, &password, salt, iterations)
        }
        (Some(password), _, None) => ScramCredential::generate(mechanism, &password, iterations)
            .map_err(|e| format!("no random salt: {e}"))?,
        (None, Some(_), None) => {
            return Err("You must supply 'salt' with 'saltedpassword' to add-scram".into())
        }
        (None, Some(salted), Some(salt)) => {
            let salted = STANDARD
                .decode(&salted)
                .map_err(|_| "Failed to decode given saltedPassword".to_string())?;
            ScramCredential::from_salted(mechanism, salt, &salted, iterations)
        }
        (None, None, _) => {
            return Err("You must supply one of 'password' or 'saltedpassword' to add-scram".into())
        }
    };
    Ok(ScramUpsert {
        user,
        mechanism,
        credential,
    })
}

/// An argument for an error message, without what may be a password.
fn redact(argument: &str) -> &str {
    argument.split('[').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(m: ScramMechanism, password: &str, iterations: u32) -> ScramCredential {
        ScramCredential::generate(m, password, iterations).unwrap()
    }

    /// AlterUserScramCredentials' changes land together; a refused one changes nothing.
    #[test]
    fn an_alteration_is_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecurityStore::open(dir.path()).unwrap();
        let old = credential(ScramMechanism::Sha256, "old", 4096);
        store
            .upsert_scram("gone", ScramMechanism::Sha256, old)
            .unwrap();
        let dave = ScramUpsert {
            user: "dave".to_string(),
            mechanism: ScramMechanism::Sha512,
            credential: credential(ScramMechanism::Sha512, "d", 8192),
        };
        let mut bad = dave.clone();
        bad.user = String::new();
        assert!(store
            .alter_scram(
                vec![dave.clone(), bad],
                vec![("gone".to_string(), ScramMechanism::Sha256)]
            )
            .is_err());
        assert!(store
            .scram_credential("dave", ScramMechanism::Sha512)
            .is_none());
        assert!(store
            .scram_credential("gone", ScramMechanism::Sha256)
            .is_some());
        store
            .alter_scram(
                vec![dave.clone()],
                vec![("gone".to_string(), ScramMechanism::Sha256)],
            )
            .unwrap();
        let reopened = SecurityStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened.scram_credential("dave", ScramMechanism::Sha512),
            Some(dave.credential)
        );
        assert!(reopened
            .scram_credential("gone", ScramMechanism::Sha256)
            .is_none());
    }

    #[test]
    fn credentials_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecurityStore::open(dir.path()).unwrap();
        assert!(store.describe_scram(None).is_empty());
        assert!(!store.path().exists(), "nothing is written before a change");
        let alice256 = credential(ScramMechanism::Sha256, "a", 4096);
        let alice512 = credential(ScramMechanism::Sha512, "a", 8192);
        let bob = credential(ScramMechanism::Sha256, "b", 4096);
        store
            .upsert_scram("alice", ScramMechanism::Sha256, alice256.clone())
            .unwrap();
        store
            .upsert_scram("alice", ScramMechanism::Sha512, alice512.clone())
            .unwrap();
        store
            .upsert_scram("bob", ScramMechanism::Sha256, bob)
            .unwrap();
        assert!(store.delete_scram("bob", ScramMechanism::Sha256).unwrap());
        assert!(!store.delete_scram("bob", ScramMechanism::Sha256).unwrap());
        assert!(!store.delete_scram("carol", ScramMechanism::Sha512).unwrap());

        let reopened = SecurityStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened.scram_credential("alice", ScramMechanism::Sha256),
            Some(alice256)
        );
        assert_eq!(
            reopened.scram_credential("alice", ScramMechanism::Sha512),
            Some(alice512)
        );
        assert_eq!(
            reopened.scram_credential("bob", ScramMechanism::Sha256),
            None
        );
        let all = reopened.describe_scram(None);
        assert_eq!(
            all.get("alice").unwrap(),
            &vec![
                ScramCredentialInfo {
                    mechanism: ScramMechanism::Sha256,
                    iterations: 4096
                },
                ScramCredentialInfo {
                    mechanism: ScramMechanism::Sha512,
                    iterations: 8192
                },
            ]
        );
        assert_eq!(all.len(), 1, "bob has no credentials left: {all:?}");
        let some = reopened.describe_scram(Some(&["bob".to_string(), "alice".to_string()]));
        assert_eq!(some.keys().collect::<Vec<_>>(), vec!["alice"]);
        // The file holds no password, in any form we were given.
        let text = std::fs::read_to_string(reopened.path()).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        assert!(text.contains("SCRAM-SHA-512"), "{text}");
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECURITY_STORE_FILE);
        let cases: [&[u8]; 6] = [
            b"{ not json",
            b"",
            br#"{"version": 2, "scram_credentials": []}"#,
            br#"{"version": 1, "scram_credentials": [], "a_future_section": []}"#,
            br#"{"version": 1, "scram_credentials": [{"user": "a", "mechanism": "SCRAM-SHA-256", "salt": "!!", "stored_key": "", "server_key": "", "iterations": 4096}]}"#,
            br#"{"version": 1, "scram_credentials": [{"user": "a", "mechanism": "SCRAM-SHA-256", "salt": "", "stored_key": "", "server_key": "", "iterations": 4096}]}"#,
        ];
        for bytes in cases {
            std::fs::write(&path, bytes).unwrap();
            let err = SecurityStore::open(dir.path()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
            assert!(
                err.to_string().contains(SECURITY_STORE_FILE),
                "the error names the file: {err}"
            );
        }
        let version = {
            std::fs::write(&path, br#"{"version": 7}"#).unwrap();
            SecurityStore::open(dir.path()).unwrap_err().to_string()
        };
        assert!(version.contains("unknown format version 7"), "{version}");
    }

    #[test]
    fn client_quotas_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecurityStore::open(dir.path()).unwrap();
        let alice: QuotaEntity = [("user".to_string(), Some("alice".to_string()))].into();
        let default_client: QuotaEntity = [("client-id".to_string(), None)].into();
        store
            .alter_client_quotas(vec![
                (
                    alice.clone(),
                    [
                        ("producer_byte_rate".to_string(), Some(1024.0)),
                        ("consumer_byte_rate".to_string(), Some(2048.0)),
                    ]
                    .into(),
                ),
                (
                    default_client.clone(),
                    [("request_percentage".to_string(), Some(50.5))].into(),
                ),
            ])
            .unwrap();
        store
            .alter_client_quotas(vec![(
                alice.clone(),
                [("consumer_byte_rate".to_string(), None)].into(),
            )])
            .unwrap();
        assert!(store
            .alter_client_quotas(vec![(
                alice.clone(),
                [("x".to_string(), Some(f64::NAN))].into()
            )])
            .is_err());
        let reopened = SecurityStore::open(dir.path()).unwrap();
        let all = reopened.client_quotas();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[&alice],
            [("producer_byte_rate".to_string(), 1024.0)].into()
        );
        assert_eq!(
            all[&default_client],
            [("request_percentage".to_string(), 50.5)].into()
        );
        // Removing the last value removes the entity.
        reopened
            .alter_client_quotas(vec![(
                default_client.clone(),
                [("request_percentage".to_string(), None)].into(),
            )])
            .unwrap();
        let text = std::fs::read_to_string(reopened.path()).unwrap();
        assert!(!text.contains("client-id"), "{text}");
        assert!(text.contains("\"alice\""), "{text}");
        // An unknown field in an entry is refused, like everywhere in the file.
        let bad = text.replace("\"values\"", "\"valeus\"");
        std::fs::write(reopened.path(), bad).unwrap();
        assert!(SecurityStore::open(dir.path()).is_err());
    }

    #[test]
    fn acls_and_policies_persist_privately_and_another_process_s_change_is_seen() {
        use crate::acl::*;
        let dir = tempfile::tempdir().unwrap();
        let broker = SecurityStore::open(dir.path()).unwrap();
        let binding = AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "orders".into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: Permission::Allow,
        };
        broker.create_acls(vec![binding.clone()]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(broker.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Another process (the CLI) adds a policy to the same file.
        let cli = SecurityStore::open(dir.path()).unwrap();
        let policy = cli
            .put_policy("send", Some("orders"), Rights::parse("Send").unwrap())
            .unwrap();
        assert!(broker.shared_access_policies().is_empty());
        assert!(broker.refresh().unwrap());
        assert_eq!(broker.shared_access_policies(), vec![policy.clone()]);
        assert!(!broker.refresh().unwrap());
        // The broker's next change starts from the file: the CLI's policy stays.
        let removed = broker.delete_acls(&[AclFilter::ANY]).unwrap();
        assert_eq!(removed, vec![vec![binding]]);
        let reopened = SecurityStore::open(dir.path()).unwrap();
        assert_eq!(reopened.shared_access_policies(), vec![policy.clone()]);
        assert!(reopened.with_acls(|a| a.is_empty()));
        let renewed = cli
            .renew_policy_key("send", Some("orders"), true)
            .unwrap()
            .unwrap();
        assert_eq!(renewed.primary_key, policy.primary_key);
        assert_ne!(renewed.secondary_key, policy.secondary_key);
        assert!(cli.remove_policy("send", Some("orders")).unwrap());
        assert!(!cli.remove_policy("send", Some("orders")).unwrap());
        assert!(cli
            .put_policy("bad name", None, Rights::parse("Send").unwrap())
            .is_err());
    }

    #[test]
    fn a_duplicate_entry_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecurityStore::open(dir.path()).unwrap();
        store
            .upsert_scram(
                "a",
                ScramMechanism::Sha256,
                credential(ScramMechanism::Sha256, "x", 4096),
            )
            .unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        let file: serde_json::Value = serde_json::from_str(&text).unwrap();
        let entry = file["scram_credentials"][0].clone();
        let doubled =
            serde_json::json!({"version": 1, "scram_credentials": [entry.clone(), entry]});
        std::fs::write(store.path(), doubled.to_string()).unwrap();
        let err = SecurityStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("two SCRAM-SHA-256 credentials"), "{err}");
    }

    #[test]
    fn invalid_credentials_are_refused_before_any_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecurityStore::open(dir.path()).unwrap();
        let m = ScramMechanism::Sha256;
        let err = |user: &str, c: ScramCredential| {
            let e = store.upsert_scram(user, m, c).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            e.to_string()
        };
        assert_eq!(
            err("", credential(m, "x", 4096)),
            "Username must not be empty"
        );
        assert_eq!(err("a", credential(m, "x", 4095)), "Too few iterations");
        assert_eq!(err("a", credential(m, "x", 16385)), "Too many iterations");
        let short = ScramCredential {
            stored_key: vec![0; 3],
            ..credential(m, "x", 4096)
        };
        assert!(err("a", short).contains("32 bytes"));
        assert!(!store.path().exists());
    }

    #[test]
    fn add_scram_arguments_parse_as_kafkas() {
        let upserts = parse_add_scram(
            "SCRAM-SHA-256=[name=alice,password=alice-secret]; SCRAM-SHA-512=[name=bob,password=\"b;c\",iterations=8192]",
        )
        .unwrap();
        assert_eq!(upserts.len(), 2);
        assert_eq!(upserts[0].user, "alice");
        assert_eq!(upserts[0].mechanism, ScramMechanism::Sha256);
        assert_eq!(upserts[0].credential.iterations, 4096);
        assert_eq!(upserts[1].mechanism, ScramMechanism::Sha512);
        assert_eq!(upserts[1].credential.iterations, 8192);
        let salt = upserts[1].credential.salt.clone();
        assert_eq!(
            upserts[1].credential,
            ScramCredential::with_salt(ScramMechanism::Sha512, "b;c", salt, 8192)
        );

        // Kafka's ScramParserTest salt and salted password.
        let salted = parse_add_scram(
            "SCRAM-SHA-512=[name=alice,salt=\"MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=\",saltedpassword=\"mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE=\"]",
        )
        .unwrap();
        let test_salt = STANDARD
            .decode("MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=")
            .unwrap();
        assert_eq!(test_salt, b"1lv4pdnw4fwq7notcxm0yy1k7q");
        let test_salted = STANDARD
            .decode("mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE=")
            .unwrap();
        assert_eq!(
            salted[0].credential,
            ScramCredential::from_salted(
                ScramMechanism::Sha512,
                test_salt.clone(),
                &test_salted,
                4096
            )
        );
        let with_salt =
            parse_add_scram("SCRAM-SHA-256=[name=bob,password=my pass,iterations=8192,salt=\"MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=\"]")
                .unwrap();
        assert_eq!(
            with_salt[0].credential,
            ScramCredential::with_salt(ScramMechanism::Sha256, "my pass", test_salt, 8192)
        );
        assert!(parse_add_scram("").unwrap().is_empty());
    }

    #[test]
    fn add_scram_errors_are_kafkas() {
        let err = |s: &str| parse_add_scram(s).unwrap_err();
        assert_eq!(
            err("SCRAM-SHA-512"),
            "Failed to find equals sign in SCRAM argument 'SCRAM-SHA-512'"
        );
        assert_eq!(
            err("SCRAM-SHA-UNSUPPORTED=[name=scram-admin,password=scram-user-secret]"),
            "The add-scram mechanism SCRAM-SHA-UNSUPPORTED is not supported."
        );
        assert_eq!(
            err("SCRAM-SHA-256=name=scram-admin,password=scram-user-secret"),
            "Expected configuration string to start with ["
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=scram-admin,password=scram-user-secret"),
            "Expected configuration string to end with ]"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[password=mypass]"),
            "You must supply 'name' to add-scram"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=bar]"),
            "You must supply one of 'password' or 'saltedpassword' to add-scram"
        );
        assert_eq!(
            err(
                "SCRAM-SHA-256=[name=bob,password=mypass,unknown=something,unknown2=somethingelse]"
            ),
            "Unknown SCRAM configurations: unknown, unknown2"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=alice,saltedpassword=\"mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE=\"]"),
            "You must supply 'salt' with 'saltedpassword' to add-scram"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=a,password=p,iterations=4095]"),
            "The 'iterations' value must be >= 4096 for add-scram using SCRAM-SHA-256"
        );
        assert_eq!(
            err("SCRAM-SHA-512=[name=a,password=p,iterations=16385]"),
            "The 'iterations' value must be <= 16384 for add-scram using SCRAM-SHA-512"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=a,password=p,iterations=many]"),
            "Failed to parse iterations count: many"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=a,password=pass,word]"),
            "No equals sign found in SCRAM component (values cannot hold ',')"
        );
        let no_leak = err("SCRAM-SHA-256=[name=a,password=hunter2,salt=%%]");
        assert!(!no_leak.contains("hunter2"), "{no_leak}");
    }
}
