//! The pages of a bulk award's member list: the ids listed in the request, or an uploaded file
//! in the migration bucket read a byte range at a time (one member id a line), so a file of any
//! length is dispatched in pages like an index, and the cursor is the next line's byte.

use crate::App;
use loyalty::campaign::award::{self, MemberList};

/// Bytes of a file read per page: about 5,000 ids of 40 characters, as an index page.
pub const FILE_PAGE_BYTES: u64 = 200 * 1024;

/// The migration bucket and a client for it (award lists are uploaded under `awards/`).
#[derive(Clone)]
pub struct MembersFiles {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
}

impl MembersFiles {
    pub fn new(config: &loyalty::aws::SdkConfig, bucket: String) -> MembersFiles {
        // A local endpoint (moto) serves buckets by path, as the migration function's client.
        let local = std::env::var("AWS_ENDPOINT_URL_S3").is_ok_and(|v| !v.is_empty());
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(config).force_path_style(local).build(),
        );
        MembersFiles { s3, bucket }
    }

    /// The file's size and ETag, or none when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<(u64, String)>, String> {
        match self.s3.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(h) => Ok(Some((
                h.content_length().unwrap_or(0).max(0) as u64,
                h.e_tag().unwrap_or_default().to_string(),
            ))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(aws_sdk_s3::error::DisplayErrorContext(e).to_string()),
        }
    }
}

/// One page of `list` from `offset`, at most `size` listed ids (the dispatcher's page): its
/// member ids and the offset of the next page (none: the list is done).
pub async fn page(
    app: &App,
    list: &MemberList,
    offset: u64,
    size: usize,
) -> Result<(Vec<String>, Option<u64>), String> {
    match list {
        MemberList::Listed { member_ids } => {
            let from = (offset as usize).min(member_ids.len());
            let to = (from + size).min(member_ids.len());
            Ok((member_ids[from..to].to_vec(), (to < member_ids.len()).then_some(to as u64)))
        }
        MemberList::File { key, size, etag } => {
            if offset >= *size {
                return Ok((Vec::new(), None));
            }
            let files =
                app.members_files.as_ref().ok_or("MIGRATION_BUCKET is not set: no member files")?;
            let last = (offset + FILE_PAGE_BYTES).min(*size) - 1;
            let got = files
                .s3
                .get_object()
                .bucket(&files.bucket)
                .key(key)
                .range(format!("bytes={offset}-{last}"))
                // The version the award was defined with, or nothing: a replaced file fails
                // the dispatch (and lands in the DLQ) rather than award other members.
                .if_match(etag)
                .send()
                .await
                .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())?;
            let bytes = got.body.collect().await.map_err(|e| e.to_string())?.into_bytes();
            let take = award::page_end(&bytes, offset, *size);
            let ids = award::file_ids(&String::from_utf8_lossy(&bytes[..take]));
            let next = offset + take as u64;
            Ok((ids, (next < *size).then_some(next)))
        }
    }
}
