//! Who is calling. On AWS, API Gateway verified the caller before the handler runs: members
//! by the JWT authorizer (`sub` = member id), operators by IAM. The handlers still check
//! that the identity matches the resource, so the rule holds whatever route reaches them.
//!
//! Local development has no API Gateway. With the `local-auth` cargo feature compiled in
//! AND `LOYALTY_LOCAL_AUTH=1` set, the headers `x-loyalty-dev-sub` and
//! `x-loyalty-dev-admin` stand in for the authorizer. Release builds (SAM) never compile
//! the feature and the template never sets the variable (both checked by tests).

use crate::error::ApiError;
use crate::member::MemberId;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Member(MemberId),
    /// An IAM principal (operators, the order system); its ARN, for the audit trail.
    Admin(String),
    Anonymous,
}

pub fn caller(req: &Request) -> Caller {
    #[cfg(feature = "local-auth")]
    if let Some(c) = local_caller(req) {
        return c;
    }
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Caller::Anonymous;
    };
    let Some(auth) = ctx.authorizer.as_ref() else {
        return Caller::Anonymous;
    };
    if let Some(sub) = auth.jwt.as_ref().and_then(|j| j.claims.get("sub")) {
        return MemberId::parse(sub).map(Caller::Member).unwrap_or(Caller::Anonymous);
    }
    if let Some(iam) = auth.iam.as_ref() {
        if let Some(arn) = iam.user_arn.clone().or_else(|| iam.caller_id.clone()) {
            return Caller::Admin(arn);
        }
    }
    Caller::Anonymous
}

#[cfg(feature = "local-auth")]
fn local_caller(req: &Request) -> Option<Caller> {
    if std::env::var("LOYALTY_LOCAL_AUTH").ok().as_deref() != Some("1") {
        return None;
    }
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if h("x-loyalty-dev-admin") == Some("1") {
        return Some(Caller::Admin("local-admin".into()));
    }
    h("x-loyalty-dev-sub").and_then(MemberId::parse).map(Caller::Member)
}

impl Caller {
    /// The member acting on their own resource `id`: anyone else is refused.
    pub fn require_member(&self, id: &MemberId) -> Result<(), ApiError> {
        match self {
            Caller::Member(me) if me == id => Ok(()),
            Caller::Member(_) => Err(ApiError::Forbidden("members may only read or change their own data".into())),
            Caller::Admin(_) => Err(ApiError::Forbidden("this route is for the member themself".into())),
            Caller::Anonymous => Err(ApiError::Unauthenticated),
        }
    }

    /// The member themself, or an operator (IAM), e.g. the order system posting purchases.
    pub fn require_member_or_admin(&self, id: &MemberId) -> Result<(), ApiError> {
        match self {
            Caller::Admin(_) => Ok(()),
            other => other.require_member(id),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin(_) => Ok(()),
            Caller::Member(_) => Err(ApiError::Forbidden("this route needs operator (IAM) authorization".into())),
            Caller::Anonymous => Err(ApiError::Unauthenticated),
        }
    }

    pub fn member_id(&self) -> Result<&MemberId, ApiError> {
        match self {
            Caller::Member(m) => Ok(m),
            Caller::Admin(_) => Err(ApiError::Forbidden("a member identity (JWT) is required".into())),
            Caller::Anonymous => Err(ApiError::Unauthenticated),
        }
    }
}
