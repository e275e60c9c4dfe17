//! Files attached to messages: stored in a local directory under their
//! `att_…` id, described by a row, and reached through URLs signed with
//! HMAC-SHA256 that stop working at their expiry.
//!
//! A file is uploaded into one conversation by one member; only that member's
//! messages in that conversation may reference it. Every time a message is
//! shown (event, reply, history) its attachments get freshly signed URLs.
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::attachment;
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::random_id;

/// Most attachments one message carries.
pub const MAX_PER_MESSAGE: usize = 10;
/// Longest file name kept, in characters.
pub const MAX_FILENAME_CHARS: usize = 255;
/// Longest content type (without parameters), in characters: its column.
pub const MAX_CONTENT_TYPE_CHARS: usize = 255;

/// Whether a stored file of this type may be shown in the browser
/// (`Content-Disposition: inline`): only types that cannot carry script —
/// raster images, audio, video. Anything else (SVG, HTML, XML, PDF, …)
/// is served as a download, so an upload can never run on the API's origin.
pub fn served_inline(content_type: &str) -> bool {
    const RASTER: [&str; 7] = ["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp", "image/x-icon"];
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    RASTER.contains(&essence.as_str()) || essence.starts_with("audio/") || essence.starts_with("video/")
}
/// Name of the generated signing key inside the storage directory.
const KEY_FILE: &str = ".signing-key";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentSettings {
    /// Where uploaded files are stored.
    pub dir: PathBuf,
    /// Largest upload, in bytes.
    pub max_bytes: u64,
    /// Accepted content types; `type/*` accepts a whole family.
    pub allowed_types: Vec<String>,
    /// How long a signed URL works.
    #[serde(with = "humantime_serde")]
    pub url_ttl: Duration,
    /// HMAC key of the URLs; instances sharing a storage directory and
    /// database must share it. Generated into `dir` when unset.
    pub signing_key: Option<String>,
}

impl Default for AttachmentSettings {
    fn default() -> Self {
        AttachmentSettings {
            dir: PathBuf::from("mqchat-uploads"),
            max_bytes: 10 * 1024 * 1024,
            allowed_types: ["image/*", "audio/*", "video/*", "application/pdf", "text/plain"]
                .map(String::from)
                .to_vec(),
            url_ttl: Duration::from_secs(3600),
            signing_key: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    #[error("content type {0:?} is not accepted")]
    ContentType(String),
    #[error("{0}")]
    Invalid(String),
    #[error("attachment {0} not found (it must be uploaded by you into this conversation)")]
    NotFound(String),
    #[error("storing the file failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// What a message stores about each of its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AttachmentRef {
    pub id: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

/// An attachment as clients see it: with a signed URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AttachmentView {
    #[serde(flatten)]
    pub file: AttachmentRef,
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// The storage directory and the URL signer.
pub struct FileStore {
    settings: AttachmentSettings,
    /// Keyed with the signing key; cloned for each signature.
    mac: Hmac<Sha256>,
    /// `http://host:port` the URLs start with.
    base_url: String,
}

impl FileStore {
    /// Creates the directory and, when no key is configured, reads or
    /// creates the generated one.
    pub fn open(settings: AttachmentSettings, base_url: &str) -> std::io::Result<FileStore> {
        std::fs::create_dir_all(&settings.dir)?;
        let key = match &settings.signing_key {
            Some(key) if key.len() >= 32 => key.as_bytes().to_vec(),
            Some(_) => {
                return Err(std::io::Error::new(ErrorKind::InvalidInput, "attachments.signing_key needs 32 characters or more"))
            }
            None => generated_key(&settings.dir)?,
        };
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
            .map_err(|error| std::io::Error::new(ErrorKind::InvalidInput, error.to_string()))?;
        Ok(FileStore { settings, mac, base_url: base_url.trim_end_matches('/').to_owned() })
    }

    pub fn max_bytes(&self) -> u64 {
        self.settings.max_bytes
    }

    /// Stores an upload and returns it with a signed URL.
    pub async fn save(
        &self,
        db: &impl ConnectionTrait,
        upload: Upload<'_>,
    ) -> Result<AttachmentView, AttachmentError> {
        if upload.bytes.len() as u64 > self.settings.max_bytes {
            return Err(AttachmentError::TooLarge(self.settings.max_bytes));
        }
        if upload.bytes.is_empty() {
            return Err(AttachmentError::Invalid("the file is empty".into()));
        }
        let content_type = upload.content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if content_type.len() > MAX_CONTENT_TYPE_CHARS {
            return Err(AttachmentError::Invalid(format!("`Content-Type` is longer than {MAX_CONTENT_TYPE_CHARS} characters")));
        }
        if !self.accepts(&content_type) {
            return Err(AttachmentError::ContentType(content_type));
        }
        let filename = clean_filename(upload.filename)?;
        let id = random_id("att_", 24);
        let path = self.path_of(&id);
        let partial = self.settings.dir.join(format!(".{id}.partial"));
        tokio::fs::write(&partial, upload.bytes).await?;
        tokio::fs::File::open(&partial).await?.sync_all().await?;
        tokio::fs::rename(&partial, &path).await?;
        let row = attachment::ActiveModel {
            id: Set(id),
            project_id: Set(upload.project_id.to_owned()),
            conversation_id: Set(upload.conversation_id.to_owned()),
            uploader_id: Set(upload.uploader_id.to_owned()),
            filename: Set(filename),
            content_type: Set(content_type),
            size: Set(upload.bytes.len() as i64),
            created_at: Set(crate::clock::now()),
        }
        .insert(db)
        .await;
        match row {
            Ok(row) => Ok(self.sign(AttachmentRef {
                id: row.id,
                filename: row.filename,
                content_type: row.content_type,
                size: row.size,
            })),
            Err(error) => {
                let _ = tokio::fs::remove_file(&path).await;
                Err(error.into())
            }
        }
    }

    fn accepts(&self, content_type: &str) -> bool {
        let valid = content_type.split_once('/').is_some_and(|(family, sub)| {
            !family.is_empty() && !sub.is_empty() && content_type.chars().all(|c| c.is_ascii_graphic())
        });
        valid
            && self.settings.allowed_types.iter().any(|allowed| match allowed.strip_suffix("/*") {
                Some(family) => content_type.split_once('/').is_some_and(|(f, _)| f == family),
                None => allowed == content_type,
            })
    }

    /// The files `ids` as a message by `uploader_id` in `conversation_id` may
    /// reference them, in the order given.
    pub async fn for_message(
        &self,
        db: &impl ConnectionTrait,
        project_id: &str,
        conversation_id: &str,
        uploader_id: &str,
        ids: &[String],
    ) -> Result<Vec<AttachmentRef>, AttachmentError> {
        if ids.len() > MAX_PER_MESSAGE {
            return Err(AttachmentError::Invalid(format!("at most {MAX_PER_MESSAGE} attachments per message")));
        }
        let rows = attachment::Entity::find()
            .filter(attachment::Column::Id.is_in(ids.iter().cloned()))
            .filter(attachment::Column::ProjectId.eq(project_id))
            .filter(attachment::Column::ConversationId.eq(conversation_id))
            .filter(attachment::Column::UploaderId.eq(uploader_id))
            .all(db)
            .await?;
        ids.iter()
            .map(|id| {
                rows.iter()
                    .find(|row| &row.id == id)
                    .map(|row| AttachmentRef {
                        id: row.id.clone(),
                        filename: row.filename.clone(),
                        content_type: row.content_type.clone(),
                        size: row.size,
                    })
                    .ok_or_else(|| AttachmentError::NotFound(id.clone()))
            })
            .collect()
    }

    /// `file` with a URL valid for the configured time from now.
    pub fn sign(&self, file: AttachmentRef) -> AttachmentView {
        let expires = Utc::now().timestamp() + self.settings.url_ttl.as_secs() as i64;
        let signature = self.signature(&file.id, expires);
        let url = format!("{}/api/v1/files/{}?expires={expires}&signature={signature}", self.base_url, file.id);
        let expires_at = DateTime::from_timestamp(expires, 0).unwrap_or_else(Utc::now);
        AttachmentView { file, url, expires_at }
    }

    /// Whether a URL's `expires` and `signature` are genuine and not past.
    pub fn verify(&self, id: &str, expires: i64, signature: &str, now: DateTime<Utc>) -> bool {
        let Ok(given) = hex::decode(signature) else { return false };
        let mut mac = self.mac();
        mac.update(format!("{id}\n{expires}").as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&given).is_ok() && now.timestamp() <= expires
    }

    /// The stored file and its row, for serving a verified URL.
    pub async fn find(&self, db: &impl ConnectionTrait, id: &str) -> Result<(attachment::Model, PathBuf), AttachmentError> {
        let row = attachment::Entity::find_by_id(id.to_owned())
            .one(db)
            .await?
            .ok_or_else(|| AttachmentError::NotFound(id.to_owned()))?;
        let path = self.path_of(&row.id);
        Ok((row, path))
    }

    fn signature(&self, id: &str, expires: i64) -> String {
        let mut mac = self.mac();
        mac.update(format!("{id}\n{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }

    fn path_of(&self, id: &str) -> PathBuf {
        self.settings.dir.join(id)
    }
}

/// One upload, as the HTTP API received it.
pub struct Upload<'a> {
    pub project_id: &'a str,
    pub conversation_id: &'a str,
    pub uploader_id: &'a str,
    pub filename: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// The name without any directory part or control characters.
fn clean_filename(raw: &str) -> Result<String, AttachmentError> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        return Err(AttachmentError::Invalid("give the file a name (`filename`)".into()));
    }
    if cleaned.chars().count() > MAX_FILENAME_CHARS {
        return Err(AttachmentError::Invalid(format!("file names are at most {MAX_FILENAME_CHARS} characters")));
    }
    Ok(cleaned.to_owned())
}

fn generated_key(dir: &Path) -> std::io::Result<Vec<u8>> {
    let path = dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(key) if key.trim().len() >= 32 => Ok(key.trim().as_bytes().to_vec()),
        Ok(_) => Err(std::io::Error::new(ErrorKind::InvalidData, format!("{} is too short", path.display()))),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            let key = random_id("", 48);
            std::fs::write(&path, &key)?;
            Ok(key.into_bytes())
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_types_without_script_are_served_inline() {
        for inline in ["image/png", "IMAGE/JPEG", "image/webp; q=1", "audio/ogg", "video/mp4"] {
            assert!(super::served_inline(inline), "{inline}");
        }
        for download in ["image/svg+xml", "Image/SVG+XML; charset=utf-8", "text/html", "application/xml", "application/pdf", "image/"] {
            assert!(!super::served_inline(download), "{download}");
        }
    }

    use super::*;

    fn store(dir: &Path) -> FileStore {
        let settings = AttachmentSettings { dir: dir.to_owned(), ..AttachmentSettings::default() };
        FileStore::open(settings, "http://127.0.0.1:8080/").unwrap()
    }

    #[test]
    fn signed_urls_verify_until_expiry_and_not_for_another_file() {
        let dir = std::env::temp_dir().join(random_id("mqchat-att-", 8));
        let files = store(&dir);
        let view = files.sign(AttachmentRef {
            id: "att_1".into(),
            filename: "a.png".into(),
            content_type: "image/png".into(),
            size: 3,
        });
        assert!(view.url.starts_with("http://127.0.0.1:8080/api/v1/files/att_1?expires="));
        let query = view.url.split_once('?').unwrap().1;
        let expires: i64 = query.split('&').next().unwrap().trim_start_matches("expires=").parse().unwrap();
        let signature = query.split("signature=").nth(1).unwrap();
        let now = Utc::now();
        assert!(files.verify("att_1", expires, signature, now));
        assert!(!files.verify("att_2", expires, signature, now), "a signature is bound to its file");
        assert!(!files.verify("att_1", expires + 3600, signature, now), "the expiry cannot be extended");
        let later = DateTime::from_timestamp(expires + 1, 0).unwrap();
        assert!(!files.verify("att_1", expires, signature, later), "an expired URL is refused");
        // The generated key survives a restart: old URLs keep working.
        assert!(store(&dir).verify("att_1", expires, signature, now));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn content_types_and_names_are_checked() {
        let dir = std::env::temp_dir().join(random_id("mqchat-att-", 8));
        let files = store(&dir);
        assert!(files.accepts("image/png"));
        assert!(files.accepts("application/pdf"));
        assert!(!files.accepts("text/html"));
        assert!(!files.accepts("application/x-msdownload"));
        assert!(!files.accepts("image"));
        assert_eq!(clean_filename("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(clean_filename("C:\\x\\photo.jpg").unwrap(), "photo.jpg");
        assert!(clean_filename("..").is_err());
        assert!(clean_filename("").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
