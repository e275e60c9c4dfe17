//! A project's own launcher icon for the widget (in place of the chat
//! bubble): a PNG or an SVG of at most 100 KB, checked when it is set. The
//! browser scales it to the launcher; an SVG is only ever shown through an
//! `<img>`, where it runs no script, and is served with a sandbox CSP.
use entity::launcher_icon;
use sea_orm::sea_query::OnConflict;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QuerySelect, Set};

/// Largest icon accepted.
pub const MAX_ICON_BYTES: usize = 100 * 1024;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A checked icon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LauncherIcon {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

impl LauncherIcon {
    /// The icon, if `bytes` are what `content_type` says, or why not.
    pub fn parse(content_type: &str, bytes: Vec<u8>) -> Result<LauncherIcon, String> {
        if bytes.len() > MAX_ICON_BYTES {
            return Err(format!("the icon is {} bytes; at most {MAX_ICON_BYTES}", bytes.len()));
        }
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "image/png" if bytes.starts_with(PNG_SIGNATURE) => Ok(LauncherIcon { content_type: "image/png", bytes }),
            "image/svg+xml" if looks_like_svg(&bytes) => Ok(LauncherIcon { content_type: "image/svg+xml", bytes }),
            "image/png" | "image/svg+xml" => Err(format!("the body is not a {essence} file")),
            _ => Err("send the icon as image/png or image/svg+xml".into()),
        }
    }
}

/// UTF-8 text whose root element is `<svg` (after an optional XML prolog
/// and comments), which is what browsers render as an image.
fn looks_like_svg(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    let mut rest = text.trim_start_matches('\u{feff}').trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("<?") {
            let Some(end) = after.find("?>") else { return false };
            rest = after[end + 2..].trim_start();
        } else if let Some(after) = rest.strip_prefix("<!--") {
            let Some(end) = after.find("-->") else { return false };
            rest = after[end + 3..].trim_start();
        } else {
            return rest.starts_with("<svg");
        }
    }
}

pub async fn set(db: &impl ConnectionTrait, project_id: &str, icon: &LauncherIcon) -> Result<(), DbErr> {
    let row = launcher_icon::ActiveModel {
        project_id: Set(project_id.to_owned()),
        content_type: Set(icon.content_type.to_owned()),
        bytes: Set(icon.bytes.clone()),
        updated_at: Set(crate::clock::now()),
    };
    launcher_icon::Entity::insert(row)
        .on_conflict(
            OnConflict::column(launcher_icon::Column::ProjectId)
                .update_columns([launcher_icon::Column::ContentType, launcher_icon::Column::Bytes, launcher_icon::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Removes the icon; false when there was none.
pub async fn remove(db: &impl ConnectionTrait, project_id: &str) -> Result<bool, DbErr> {
    Ok(launcher_icon::Entity::delete_by_id(project_id.to_owned()).exec(db).await?.rows_affected > 0)
}

pub async fn find(db: &impl ConnectionTrait, project_id: &str) -> Result<Option<launcher_icon::Model>, DbErr> {
    launcher_icon::Entity::find_by_id(project_id.to_owned()).one(db).await
}

/// When the icon was last set, without reading the file (for its URL).
pub async fn updated_at(db: &impl ConnectionTrait, project_id: &str) -> Result<Option<DateTime<Utc>>, DbErr> {
    launcher_icon::Entity::find_by_id(project_id.to_owned())
        .select_only()
        .column(launcher_icon::Column::UpdatedAt)
        .into_tuple()
        .one(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_png_and_svg_that_are_what_they_say_and_small_enough() {
        let png = [PNG_SIGNATURE, b"rest"].concat();
        assert!(LauncherIcon::parse("image/png", png.clone()).is_ok());
        assert!(LauncherIcon::parse("IMAGE/PNG; charset=binary", png.clone()).is_ok());
        for svg in ["<svg xmlns='http://www.w3.org/2000/svg'/>", "<?xml version='1.0'?>\n<!-- logo -->\n<svg/>"] {
            assert!(LauncherIcon::parse("image/svg+xml", svg.as_bytes().to_vec()).is_ok(), "{svg}");
        }
        assert!(LauncherIcon::parse("image/png", b"<svg/>".to_vec()).is_err());
        assert!(LauncherIcon::parse("image/svg+xml", b"<html><script>alert(1)</script>".to_vec()).is_err());
        assert!(LauncherIcon::parse("text/html", b"<svg/>".to_vec()).is_err());
        assert!(LauncherIcon::parse("image/png", [png.as_slice(), &vec![0; MAX_ICON_BYTES]].concat()).is_err());
    }
}
