//! Watch streams: the current presence of each target first, then every change.
//!
//! A watch subscribes to each member's changes before reading their current state, so
//! nothing falls between the two; it then forwards a change only when it is newer (by
//! store revision) than what the stream already sent and shows another status. A
//! subscription that fell behind is made good by reading the state again.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use palaver_kit::Error;

use super::ids::{MemberKey, Target};
use super::{FeedItem, MemberPresence, Presence, Resolved, check_targets, not_found};
use palaver_kit::status::Status;

/// What a watch knows about one watched member.
struct Watched {
    /// The targets naming this member, each with its own endpoint and name.
    targets: Vec<Resolved>,
    revision: u64,
    status: Option<Status>,
}

impl Watched {
    /// Notes `presence` and answers whether the stream should send it: a newer
    /// revision with another status.
    fn advance(&mut self, presence: &MemberPresence) -> bool {
        if presence.revision < self.revision {
            return false;
        }
        self.revision = presence.revision;
        if self.status == Some(presence.status) {
            return false;
        }
        self.status = Some(presence.status);
        true
    }

    /// `presence` as each target of this member names it.
    fn items(&self, presence: &MemberPresence) -> Vec<MemberPresence> {
        self.targets
            .iter()
            .map(|target| MemberPresence {
                endpoint: target.endpoint.clone(),
                display_name: if presence.display_name.is_empty() {
                    target.display_name.clone()
                } else {
                    presence.display_name.clone()
                },
                ..presence.clone()
            })
            .collect()
    }
}

impl Presence {
    /// The presence of every target now, then each change, until the stream is
    /// dropped (or the bus goes away). Every target must be known and, for an endpoint,
    /// open; else nothing is watched and the answer is not found.
    pub async fn watch(
        self: &Arc<Self>,
        app_id: &str,
        targets: &[Target],
    ) -> Result<BoxStream<'static, MemberPresence>, Error> {
        check_targets(app_id, targets)?;
        if targets.is_empty() {
            return Err(Error::invalid("targets", "name at least one"));
        }
        let resolved = self
            .resolve(app_id, targets)
            .await?
            .into_iter()
            .zip(targets)
            .map(|(resolved, target)| resolved.ok_or_else(|| not_found(target)))
            .collect::<Result<Vec<Resolved>, Error>>()?;

        let mut watched: HashMap<MemberKey, Watched> = HashMap::new();
        for target in &resolved {
            watched
                .entry(target.member.clone())
                .or_insert_with(|| Watched {
                    targets: Vec::new(),
                    revision: 0,
                    status: None,
                })
                .targets
                .push(target.clone());
        }
        let mut feeds = Vec::new();
        for member in watched.keys() {
            let member = member.clone();
            let feed = self.events.subscribe(&member).await?;
            feeds.push(feed.map(move |item| (member.clone(), item)).boxed());
        }

        let mut first = Vec::new();
        for target in resolved {
            let presence = self.read(target.clone()).await?;
            if let Some(watched) = watched.get_mut(&target.member) {
                watched.revision = watched.revision.max(presence.revision);
                watched.status = Some(presence.status);
            }
            first.push(presence);
        }

        let presence = self.clone();
        let changes = stream::unfold(
            (watched, stream::select_all(feeds)),
            move |(mut watched, mut feeds)| {
                let presence = presence.clone();
                async move {
                    loop {
                        let (member, item) = feeds.next().await?;
                        let Some(watch) = watched.get_mut(&member) else {
                            continue;
                        };
                        let latest = match item {
                            FeedItem::Changed(latest) => latest,
                            FeedItem::Missed => match presence.read(watch.targets[0].clone()).await {
                                Ok(latest) => latest,
                                Err(error) => {
                                    tracing::warn!(%member, %error, "cannot catch a watch up; ending it");
                                    return None;
                                }
                            },
                        };
                        if watch.advance(&latest) {
                            let items = watch.items(&latest);
                            return Some((stream::iter(items), (watched, feeds)));
                        }
                    }
                }
            },
        )
        .flatten();
        Ok(stream::iter(first).chain(changes).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(revision: u64, status: Status) -> MemberPresence {
        MemberPresence {
            member: MemberKey::new("app", "m1").unwrap(),
            endpoint: None,
            status,
            updated_at: None,
            display_name: String::new(),
            revision,
        }
    }

    fn watched() -> Watched {
        Watched {
            targets: vec![
                Resolved {
                    member: MemberKey::new("app", "m1").unwrap(),
                    endpoint: Some("ce_1".into()),
                    display_name: "Ada".into(),
                },
                Resolved {
                    member: MemberKey::new("app", "m1").unwrap(),
                    endpoint: None,
                    display_name: "Ada".into(),
                },
            ],
            revision: 10,
            status: Some(Status::Online),
        }
    }

    #[test]
    fn only_newer_revisions_with_another_status_are_sent() {
        let mut watched = watched();
        assert!(!watched.advance(&presence(9, Status::Busy)), "older");
        assert!(
            !watched.advance(&presence(11, Status::Online)),
            "same status"
        );
        assert!(watched.advance(&presence(12, Status::Busy)));
        assert!(
            !watched.advance(&presence(11, Status::Online)),
            "late and stale"
        );
        assert_eq!((watched.revision, watched.status), (12, Some(Status::Busy)));
    }

    #[test]
    fn each_target_gets_its_own_item() {
        let items = watched().items(&presence(12, Status::Busy));
        let endpoints: Vec<Option<&str>> = items.iter().map(|i| i.endpoint.as_deref()).collect();
        assert_eq!(endpoints, [Some("ce_1"), None]);
        assert!(items.iter().all(|i| i.display_name == "Ada"));
    }
}
