//! What every scenario starts with, so that a test states only what is its own: the
//! browsers and `palaver up` ([`Stage`]), and for the scenarios of a chat the member
//! [`MEMBER`] with a chat box on their profile and a visitor ([`Scene`]).

use url::Url;

use crate::demo::{self, MEMBER};
use crate::{Chromium, Page, Palaver};

/// chromedriver and a fresh `palaver up`, both stopped when it is dropped.
pub struct Stage {
    /// The running `palaver up`.
    pub palaver: Palaver,
    chromium: Chromium,
}

impl Stage {
    /// Starts chromedriver and `palaver up` (see [`Chromium::start`]).
    pub async fn start() -> Stage {
        let chromium = Chromium::start().await;
        let palaver = Palaver::up().await;
        Stage { palaver, chromium }
    }

    /// A new browser window with a profile of its own: one person.
    pub async fn person(&self) -> Page {
        self.chromium.session().await
    }
}

/// The member [`MEMBER`], signed in on the demo site with a chat box on their public
/// profile (the console not open), and a visitor whose browser is on no page yet.
pub struct Scene {
    /// The member's browser, signed in on the demo site.
    pub member: Page,
    /// The visitor's browser.
    pub visitor: Page,
    /// The member's public profile page, with the chat box.
    pub profile: Url,
    /// The running `palaver up`.
    pub palaver: Palaver,
    _chromium: Chromium,
}

impl Scene {
    /// Sets the scene on a new [`Stage`].
    pub async fn start() -> Scene {
        let Stage { palaver, chromium } = Stage::start().await;
        let member = chromium.session().await;
        let visitor = chromium.session().await;
        let profile = demo::member_with_chat_box(&member, &palaver, MEMBER).await;
        Scene {
            member,
            visitor,
            profile,
            palaver,
            _chromium: chromium,
        }
    }

    /// Closes both browsers (the visitor's first), checking that each closes.
    pub async fn close(self) {
        self.visitor.close().await;
        self.member.close().await;
    }
}
