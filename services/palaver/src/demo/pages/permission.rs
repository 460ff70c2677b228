//! The permission token's flow: acquiring it through Palaver's consent page (PKCE), the
//! return from that page, refreshing and revoking.

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use palaver_kit::random::random_string;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Fields, PageResult, settings_of, store_failed};
use crate::demo::state::{self, PendingConsent};
use crate::demo::{CONSENT_RETURN_PATH, Site, Visit};

/// Starts the consent flow: a PKCE verifier and a random state kept here, the member's
/// browser sent to Palaver's consent page.
pub(super) async fn acquire(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Form(fields): Fields,
) -> PageResult {
    visit.check(&site, &fields).await?;
    let member = visit.member()?;
    let code_verifier = random_string(64);
    let code_challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(code_verifier.as_bytes()));
    let consent_state = random_string(32);
    let consent_url = site
        .cms
        .consent_url(
            member.external_id,
            &site.link(CONSENT_RETURN_PATH),
            &consent_state,
            &code_challenge,
        )
        .await
        .map_err(|e| visit.api_failed(&site, &e))?;
    let pending = PendingConsent {
        session: visit.session.clone(),
        external_id: member.external_id.to_owned(),
        code_verifier,
        created_at: state::now(),
    };
    site.store
        .update(|saved| saved.consents.insert(consent_state, pending))
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    Ok(Redirect::to(&consent_url).into_response())
}

/// Where the consent page sends the member back.
#[derive(Deserialize)]
pub(super) struct ConsentAnswer {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// The return URL: checks the state against this browser's request, then exchanges the
/// code (with the PKCE verifier) for the permission and refresh tokens.
pub(super) async fn consent_return(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Query(answer): Query<ConsentAnswer>,
) -> PageResult {
    let consent_state = answer.state.unwrap_or_default();
    let session = visit.session.clone();
    let pending = site
        .store
        .update(|saved| match saved.consents.get(&consent_state) {
            Some(pending) if pending.session == session => saved.consents.remove(&consent_state),
            _ => None,
        })
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    let Some(pending) = pending else {
        return Err(visit.fail(
            &site,
            StatusCode::BAD_REQUEST,
            "This answer does not belong to a consent request made in this browser, or it came too late. Nothing changed: start again on My Account.",
        ));
    };
    let code = match (answer.error.as_deref(), answer.code) {
        (Some("access_denied"), _) => {
            return Ok(Redirect::to("/account?result=denied").into_response());
        }
        (None, Some(code)) if !code.is_empty() => code,
        _ => return Ok(Redirect::to("/account?result=failed").into_response()),
    };
    let return_url = site.link(CONSENT_RETURN_PATH);
    let tokens = site
        .cms
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &pending.code_verifier),
            ("redirect_uri", &return_url),
        ])
        .await
        .map_err(|e| visit.api_failed(&site, &e))?;
    site.store
        .update(|saved| {
            let settings = saved.members.entry(pending.external_id).or_default();
            settings.permission_token = Some(tokens.access_token);
            settings.refresh_token = Some(tokens.refresh_token);
        })
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    Ok(Redirect::to("/account?result=granted").into_response())
}

pub(super) async fn refresh(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Form(fields): Fields,
) -> PageResult {
    visit.check(&site, &fields).await?;
    let member = visit.member()?;
    let Some(refresh_token) = settings_of(&site, member).await.refresh_token else {
        return Err(visit.fail(
            &site,
            StatusCode::CONFLICT,
            "There is no permission token to refresh: acquire one on My Account.",
        ));
    };
    let tokens = match site
        .cms
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ])
        .await
    {
        Ok(tokens) => Some(tokens),
        Err(e) if e.code() == Some("invalid_grant") => None,
        Err(e) => return Err(visit.api_failed(&site, &e)),
    };
    let result = if tokens.is_some() {
        "refreshed"
    } else {
        "refresh_failed"
    };
    site.store
        .update(|saved| {
            let settings = saved
                .members
                .entry(member.external_id.to_owned())
                .or_default();
            settings.permission_token = tokens.as_ref().map(|t| t.access_token.clone());
            settings.refresh_token = tokens.map(|t| t.refresh_token);
        })
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    Ok(Redirect::to(&format!("/account?result={result}")).into_response())
}

pub(super) async fn revoke(
    State(site): State<Arc<Site>>,
    visit: Visit,
    Form(fields): Fields,
) -> PageResult {
    visit.check(&site, &fields).await?;
    let member = visit.member()?;
    site.cms
        .revoke(member.external_id)
        .await
        .map_err(|e| visit.api_failed(&site, &e))?;
    site.store
        .update(|saved| {
            if let Some(settings) = saved.members.get_mut(member.external_id) {
                settings.permission_token = None;
                settings.refresh_token = None;
            }
        })
        .await
        .map_err(|e| store_failed(&visit, &site, &e))?;
    Ok(Redirect::to("/account?result=revoked").into_response())
}
