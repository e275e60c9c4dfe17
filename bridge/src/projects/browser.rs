//! What a project lets web pages do: which origins may embed it, how
//! `identify()` is verified, whether visitors (people not logged in to the
//! site) may chat, how long session tokens live, and how the widget looks.
//! Everything here is checked when it is set, so the HTTP API, the gateway's
//! `Origin` check and the widget read values that are already valid.
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Most origins a project may allow.
pub const MAX_ALLOWED_ORIGINS: usize = 100;
/// Session lifetimes a project may choose (1 h – 7 d).
pub const MIN_SESSION_LIFETIME_SECS: u32 = 3600;
pub const MAX_SESSION_LIFETIME_SECS: u32 = 7 * 24 * 3600;
pub const DEFAULT_SESSION_LIFETIME_SECS: u32 = 24 * 3600;
/// Shortest identity-verification secret a site may set itself.
pub const MIN_IDENTITY_SECRET_CHARS: usize = 32;

/// How `identify()` treats the `userHash` a page sends with a user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verification {
    /// Claims are recorded, never verified.
    #[default]
    Off,
    /// A valid hash marks the identity verified; without one it is kept,
    /// marked unverified.
    Optional,
    /// Without a valid hash the identity is refused.
    Required,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Off => "off",
            Verification::Optional => "optional",
            Verification::Required => "required",
        }
    }

    pub fn parse(value: &str) -> Verification {
        match value {
            "optional" => Verification::Optional,
            "required" => Verification::Required,
            _ => Verification::Off,
        }
    }
}

/// A project's settings for web pages, as stored and as the server API
/// shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrowserSettings {
    /// Origins (`scheme://host[:port]`) allowed to call the browser-facing
    /// routes and open WebSockets; empty allows all (for development).
    pub allowed_origins: Vec<String>,
    pub identity_verification: Verification,
    /// Key of `userHash` = hex HMAC-SHA256 of the user id; only the
    /// site's backend sees it.
    pub identity_verification_secret: Option<String>,
    /// Whether visitors may get a session from the public key alone.
    pub visitors: bool,
    pub session_lifetime_seconds: u32,
    pub widget: WidgetConfig,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        BrowserSettings {
            allowed_origins: Vec::new(),
            identity_verification: Verification::Off,
            identity_verification_secret: None,
            visitors: false,
            session_lifetime_seconds: DEFAULT_SESSION_LIFETIME_SECS,
            widget: WidgetConfig::default(),
        }
    }
}

impl BrowserSettings {
    /// Whether a browser page of `origin` may use the project. Requests
    /// without an `Origin` header do not come from a page and are not
    /// judged here.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.is_empty() || self.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin))
    }

    /// Whether `user_hash` is the hex HMAC-SHA256 of `user_id` under the
    /// project's secret (compared in constant time).
    pub fn verifies(&self, user_id: &str, user_hash: &str) -> bool {
        let (Some(secret), Ok(expected)) = (self.identity_verification_secret.as_deref(), hex::decode(user_hash.trim())) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(user_id.as_bytes());
        mac.verify_slice(&expected).is_ok()
    }
}

/// The widget's look (colors, typography, layout, texts, branding — the
/// customization hosted chat widgets offer); every field optional,
/// the widget's defaults apply to what is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bubble_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_color: Option<String>,
    /// A font family the page's visitors may have installed; the widget
    /// falls back to the system font (it loads no web fonts: a site's CSP
    /// need not allow a font host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub font_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub font_size: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launcher_size: Option<Size>,
    /// Header title, at most 40 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Composer placeholder, at most 80 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub show_branding: Option<bool>,
    /// The widget's language when the page names none (`en`, `fr`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Small,
    Medium,
    Large,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Position {
    BottomRight,
    BottomLeft,
    /// Rendered inside the page's `container` element, no launcher.
    Inline,
}

/// The fonts a site may name: twelve common web fonts (and `system`).
const FONTS: [&str; 13] = [
    "system",
    "Inter",
    "Roboto",
    "Open Sans",
    "Lato",
    "Montserrat",
    "Poppins",
    "Nunito",
    "Raleway",
    "Source Sans Pro",
    "PT Sans",
    "Merriweather",
    "Playfair Display",
];
/// Languages the widget ships.
pub const LOCALES: [&str; 2] = ["en", "fr"];

impl WidgetConfig {
    fn check(&self) -> Result<(), String> {
        let colors = [
            ("primary_color", &self.primary_color),
            ("bubble_color", &self.bubble_color),
            ("background_color", &self.background_color),
            ("text_color", &self.text_color),
        ];
        for (name, color) in colors {
            if let Some(color) = color {
                let hex = color.strip_prefix('#').unwrap_or("");
                if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!("`widget.{name}` is a 6-digit hex color like #6366F1"));
                }
            }
        }
        if let Some(font) = &self.font_family {
            if !FONTS.contains(&font.as_str()) {
                return Err(format!("`widget.font_family` is one of {}", FONTS.join(", ")));
            }
        }
        check_text("widget.title", self.title.as_deref(), 40)?;
        check_text("widget.placeholder", self.placeholder.as_deref(), 80)?;
        if let Some(locale) = &self.locale {
            if !LOCALES.contains(&locale.as_str()) {
                return Err(format!("`widget.locale` is one of {}", LOCALES.join(", ")));
            }
        }
        Ok(())
    }
}

fn check_text(name: &str, value: Option<&str>, max_chars: usize) -> Result<(), String> {
    match value {
        Some(text) if text.chars().count() > max_chars => Err(format!("`{name}` is at most {max_chars} characters")),
        Some(text) if text.chars().any(char::is_control) => Err(format!("`{name}` has a control character")),
        _ => Ok(()),
    }
}

/// A change to the browser settings (`PATCH /api/v1/project`): the fields
/// given replace the stored ones; `widget` is merged key by key, a `null`
/// key returning to the widget's default.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BrowserChanges {
    pub allowed_origins: Option<Vec<String>>,
    pub identity_verification: Option<Verification>,
    pub identity_verification_secret: Option<String>,
    pub visitors: Option<bool>,
    pub session_lifetime_seconds: Option<u32>,
    pub widget: Option<serde_json::Map<String, serde_json::Value>>,
}

impl BrowserChanges {
    /// The settings after the change, or why it is refused. A project that
    /// turns verification on without a secret gets a fresh one.
    pub fn apply(self, current: &BrowserSettings, fresh_secret: impl FnOnce() -> String) -> Result<BrowserSettings, String> {
        let mut next = current.clone();
        if let Some(origins) = self.allowed_origins {
            if origins.len() > MAX_ALLOWED_ORIGINS {
                return Err(format!("`allowed_origins` has at most {MAX_ALLOWED_ORIGINS} entries"));
            }
            let mut normalized = origins.iter().map(|origin| normalize_origin(origin)).collect::<Result<Vec<_>, _>>()?;
            normalized.sort();
            normalized.dedup();
            next.allowed_origins = normalized;
        }
        if let Some(secret) = self.identity_verification_secret {
            if secret.chars().count() < MIN_IDENTITY_SECRET_CHARS || secret.chars().count() > 128 {
                return Err(format!("`identity_verification_secret` has {MIN_IDENTITY_SECRET_CHARS} to 128 characters"));
            }
            if secret.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err("`identity_verification_secret` has whitespace or a control character".into());
            }
            next.identity_verification_secret = Some(secret);
        }
        if let Some(mode) = self.identity_verification {
            next.identity_verification = mode;
        }
        if next.identity_verification != Verification::Off && next.identity_verification_secret.is_none() {
            next.identity_verification_secret = Some(fresh_secret());
        }
        if let Some(visitors) = self.visitors {
            next.visitors = visitors;
        }
        if let Some(lifetime) = self.session_lifetime_seconds {
            if !(MIN_SESSION_LIFETIME_SECS..=MAX_SESSION_LIFETIME_SECS).contains(&lifetime) {
                return Err(format!(
                    "`session_lifetime_seconds` is from {MIN_SESSION_LIFETIME_SECS} (1 h) to {MAX_SESSION_LIFETIME_SECS} (7 d)"
                ));
            }
            next.session_lifetime_seconds = lifetime;
        }
        if let Some(changes) = self.widget {
            let mut widget = match serde_json::to_value(&current.widget) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            };
            for (key, value) in changes {
                if value.is_null() {
                    widget.remove(&key);
                } else {
                    widget.insert(key, value);
                }
            }
            let widget: WidgetConfig =
                serde_json::from_value(serde_json::Value::Object(widget)).map_err(|error| format!("`widget`: {error}"))?;
            widget.check()?;
            next.widget = widget;
        }
        Ok(next)
    }
}

/// `scheme://host[:port]` in its canonical form, or why `origin` is not one.
pub fn normalize_origin(origin: &str) -> Result<String, String> {
    let refuse = || format!("{origin:?} is not an origin like https://shop.example or http://127.0.0.1:3000");
    // URL parsing would quietly strip surrounding controls and spaces; an
    // origin with any is refused instead.
    if origin.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(refuse());
    }
    let url = url::Url::parse(origin).map_err(|_| refuse())?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none() && url.username().is_empty();
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
        return Err(refuse());
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_secret() -> String {
        "iv_fresh".into()
    }

    #[test]
    fn origins_are_stored_canonical_and_paths_refused() {
        let changes = BrowserChanges {
            allowed_origins: Some(vec!["HTTPS://Shop.Example:443".into(), "http://127.0.0.1:3000/".into()]),
            ..Default::default()
        };
        let settings = changes.apply(&BrowserSettings::default(), fixed_secret).unwrap();
        assert_eq!(settings.allowed_origins, ["http://127.0.0.1:3000", "https://shop.example"]);
        assert!(settings.allows_origin("https://shop.example"));
        assert!(!settings.allows_origin("https://evil.example"));
        for bad in [
            "https://shop.example/path",
            "ftp://shop.example",
            "shop.example",
            "https://user@shop.example",
            "*",
            "https://shop.example\u{0}",
            " https://shop.example",
        ] {
            let changes = BrowserChanges { allowed_origins: Some(vec![bad.into()]), ..Default::default() };
            assert!(changes.apply(&BrowserSettings::default(), fixed_secret).is_err(), "{bad}");
        }
    }

    #[test]
    fn turning_verification_on_creates_a_secret_and_hashes_verify() {
        let changes = BrowserChanges { identity_verification: Some(Verification::Required), ..Default::default() };
        let settings = changes.apply(&BrowserSettings::default(), fixed_secret).unwrap();
        assert_eq!(settings.identity_verification_secret.as_deref(), Some("iv_fresh"));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"iv_fresh").unwrap();
        mac.update(b"usr_123");
        let hash = hex::encode(mac.finalize().into_bytes());
        assert!(settings.verifies("usr_123", &hash));
        assert!(!settings.verifies("usr_124", &hash));
        assert!(!settings.verifies("usr_123", "not hex"));
    }

    #[test]
    fn widget_changes_merge_and_are_checked() {
        let first = BrowserChanges {
            widget: Some(serde_json::json!({"title": "Help", "primary_color": "#6366F1"}).as_object().unwrap().clone()),
            ..Default::default()
        };
        let settings = first.apply(&BrowserSettings::default(), fixed_secret).unwrap();
        let second = BrowserChanges {
            widget: Some(serde_json::json!({"title": null, "position": "bottom-left"}).as_object().unwrap().clone()),
            ..Default::default()
        };
        let settings = second.apply(&settings, fixed_secret).unwrap();
        assert_eq!(settings.widget.title, None);
        assert_eq!(settings.widget.primary_color.as_deref(), Some("#6366F1"));
        assert_eq!(settings.widget.position, Some(Position::BottomLeft));
        for bad in [
            serde_json::json!({"title": "x".repeat(41)}),
            serde_json::json!({"placeholder": "y".repeat(81)}),
            serde_json::json!({"primary_color": "red"}),
            serde_json::json!({"launcher": "big"}),
            serde_json::json!({"locale": "xx"}),
        ] {
            let changes = BrowserChanges { widget: Some(bad.as_object().unwrap().clone()), ..Default::default() };
            assert!(changes.apply(&BrowserSettings::default(), fixed_secret).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_lifetime_is_one_hour_to_seven_days() {
        for (seconds, ok) in [(3599, false), (3600, true), (604_800, true), (604_801, false)] {
            let changes = BrowserChanges { session_lifetime_seconds: Some(seconds), ..Default::default() };
            assert_eq!(changes.apply(&BrowserSettings::default(), fixed_secret).is_ok(), ok, "{seconds}");
        }
    }
}
