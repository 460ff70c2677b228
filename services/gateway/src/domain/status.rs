//! Member statuses as visitors see them: their names on the wire, their text in the
//! visitor's language (en, de, fr, es, ru) and the 16×16 presence badge.

pub use palaver_kit::status::Status;

/// The badge's colours: available, away-like, busy-like, offline.
const GREEN: &str = "#2e7d32";
const AMBER: &str = "#f9a825";
const RED: &str = "#c62828";
const GRAY: &str = "#9e9e9e";

/// What the gateway adds to a status: its text in the visitor's language and its badge.
pub trait StatusText {
    /// The status as a visitor reads it, in `lang` (a language tag such as `de` or
    /// `fr-CA`; English for any other).
    fn text(self, lang: &str) -> &'static str;

    /// The 16×16 SVG badge: a dot in the status's colour, titled in English.
    fn badge_svg(self) -> String;
}

impl StatusText for Status {
    fn text(self, lang: &str) -> &'static str {
        let texts = match Language::of(lang) {
            Language::En => [
                "Online",
                "Away",
                "Idle",
                "Be right back",
                "Busy",
                "Out to lunch",
                "On the phone",
                "Offline",
            ],
            Language::De => [
                "Online",
                "Abwesend",
                "Untätig",
                "Bin gleich zurück",
                "Beschäftigt",
                "Zum Essen",
                "Am Telefon",
                "Offline",
            ],
            Language::Fr => [
                "En ligne",
                "Absent",
                "Inactif",
                "De retour dans une minute",
                "Occupé",
                "Parti manger",
                "Au téléphone",
                "Hors ligne",
            ],
            Language::Es => [
                "Conectado",
                "Ausente",
                "Inactivo",
                "Vuelvo enseguida",
                "Ocupado",
                "Salí a comer",
                "Al teléfono",
                "Desconectado",
            ],
            Language::Ru => [
                "В сети",
                "Нет на месте",
                "Неактивен",
                "Скоро вернусь",
                "Занят",
                "Обедаю",
                "Говорю по телефону",
                "Не в сети",
            ],
        };
        let index = match self.visible() {
            Status::Online => 0,
            Status::Away => 1,
            Status::Idle => 2,
            Status::BeRightBack => 3,
            Status::Busy => 4,
            Status::OutToLunch => 5,
            Status::OnThePhone => 6,
            Status::Invisible | Status::Offline => 7,
        };
        texts[index]
    }

    fn badge_svg(self) -> String {
        let colour = match self.visible() {
            Status::Online => GREEN,
            Status::Away | Status::Idle | Status::BeRightBack | Status::OutToLunch => AMBER,
            Status::Busy | Status::OnThePhone => RED,
            Status::Invisible | Status::Offline => GRAY,
        };
        format!(
            concat!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16" role="img" aria-label="{text}">"#,
                r#"<title>{text}</title>"#,
                r##"<circle cx="8" cy="8" r="6.5" fill="{colour}" stroke="#ffffff" stroke-width="1.5"/>"##,
                "</svg>"
            ),
            text = self.text("en"),
            colour = colour,
        )
    }
}

/// The languages status texts come in.
enum Language {
    En,
    De,
    Fr,
    Es,
    Ru,
}

impl Language {
    fn of(tag: &str) -> Language {
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        match primary.to_ascii_lowercase().as_str() {
            "de" => Language::De,
            "fr" => Language::Fr,
            "es" => Language::Es,
            "ru" => Language::Ru,
            _ => Language::En,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitors_see_invisible_as_offline() {
        assert_eq!(Status::Invisible.visible(), Status::Offline);
        assert!(!Status::Invisible.accepts_chats());
        assert!(!Status::Offline.accepts_chats());
        assert!(Status::Busy.accepts_chats());
        assert_eq!(Status::Invisible.text("en"), "Offline");
        assert_eq!(Status::Invisible.badge_svg(), Status::Offline.badge_svg());
    }

    #[test]
    fn texts_follow_the_language_and_fall_back_to_english() {
        assert_eq!(Status::Away.text("de"), "Abwesend");
        assert_eq!(Status::Online.text("fr-CA"), "En ligne");
        assert_eq!(Status::Busy.text("ES"), "Ocupado");
        assert_eq!(Status::Offline.text("ru"), "Не в сети");
        assert_eq!(Status::BeRightBack.text("xx"), "Be right back");
        assert_eq!(Status::BeRightBack.text(""), "Be right back");
    }

    #[test]
    fn badges_differ_by_colour() {
        let svg = Status::Online.badge_svg();
        assert!(svg.starts_with("<svg") && svg.contains(r#"width="16""#));
        assert!(svg.contains(GREEN) && svg.contains("<title>Online</title>"));
        assert!(Status::Busy.badge_svg().contains(RED));
        assert!(Status::Away.badge_svg().contains(AMBER));
    }
}
