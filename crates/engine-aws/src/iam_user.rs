//! IAM users as leased credentials: creation in Vault's order after the lease is reserved,
//! and a revocation that tolerates anything half-created or already gone.

use aws_sdk_iam::types::Tag;

use crate::role::Role;
use crate::sdk::{AwsError, Clients, aws, gone_ok};

/// A created user's key pair.
pub struct CreatedKey {
    pub access_key: String,
    pub secret_key: String,
}

/// Creates `user` with everything the role grants, then its access key. Any failure
/// returns at once: the caller's reservation makes the core revoke what exists.
pub async fn create(
    c: &Clients,
    role_name: &str,
    role: &Role,
    user: &str,
) -> Result<CreatedKey, AwsError> {
    let mut req = c.iam.create_user().user_name(user);
    if !role.user_path.is_empty() {
        req = req.path(&role.user_path);
    }
    if !role.permissions_boundary_arn.is_empty() {
        req = req.permissions_boundary(&role.permissions_boundary_arn);
    }
    for (k, v) in &role.iam_tags {
        let tag = Tag::builder()
            .key(k)
            .value(v)
            .build()
            .map_err(|e| AwsError {
                code: None,
                status: None,
                message: format!("invalid tag: {e}"),
            })?;
        req = req.tags(tag);
    }
    aws(req.send().await)?;
    for arn in &role.policy_arns {
        aws(c
            .iam
            .attach_user_policy()
            .user_name(user)
            .policy_arn(arn)
            .send()
            .await)?;
    }
    if !role.policy_document.is_empty() {
        aws(c
            .iam
            .put_user_policy()
            .user_name(user)
            .policy_name(role_name)
            .policy_document(&role.policy_document)
            .send()
            .await)?;
    }
    for g in &role.iam_groups {
        aws(c
            .iam
            .add_user_to_group()
            .user_name(user)
            .group_name(g)
            .send()
            .await)?;
    }
    let out = aws(c.iam.create_access_key().user_name(user).send().await)?;
    let key = out.access_key().ok_or_else(|| AwsError {
        code: None,
        status: None,
        message: "AWS returned no access key".into(),
    })?;
    Ok(CreatedKey {
        access_key: key.access_key_id().to_string(),
        secret_key: key.secret_access_key().to_string(),
    })
}

/// Deletes `user` and everything attached to it. A user that does not exist (never
/// created, or already deleted) is a success; so is every item already gone. The four
/// listings run at once, then the four kinds of detachment, then DeleteUser: three round
/// trips instead of seven, which is what bounds a large prefix revocation.
pub async fn delete(c: &Clients, user: &str) -> Result<(), AwsError> {
    let (keys, attached, inline, groups) = tokio::join!(
        async {
            gone_ok(aws(c
                .iam
                .list_access_keys()
                .user_name(user)
                .max_items(1000)
                .send()
                .await))
        },
        async {
            gone_ok(aws(c
                .iam
                .list_attached_user_policies()
                .user_name(user)
                .max_items(1000)
                .send()
                .await))
        },
        async {
            gone_ok(aws(c
                .iam
                .list_user_policies()
                .user_name(user)
                .max_items(1000)
                .send()
                .await))
        },
        async {
            gone_ok(aws(c
                .iam
                .list_groups_for_user()
                .user_name(user)
                .max_items(1000)
                .send()
                .await))
        },
    );
    let Some(keys) = keys? else {
        return Ok(());
    };
    let (attached, inline, groups) = (attached?, inline?, groups?);
    let (a, b, d, e) = tokio::join!(
        async {
            for id in keys
                .access_key_metadata()
                .iter()
                .filter_map(|k| k.access_key_id())
            {
                gone_ok(aws(c
                    .iam
                    .delete_access_key()
                    .user_name(user)
                    .access_key_id(id)
                    .send()
                    .await))?;
            }
            Ok::<(), AwsError>(())
        },
        async {
            for arn in attached
                .iter()
                .flat_map(|a| a.attached_policies())
                .filter_map(|p| p.policy_arn())
            {
                gone_ok(aws(c
                    .iam
                    .detach_user_policy()
                    .user_name(user)
                    .policy_arn(arn)
                    .send()
                    .await))?;
            }
            Ok::<(), AwsError>(())
        },
        async {
            for name in inline.iter().flat_map(|i| i.policy_names()) {
                gone_ok(aws(c
                    .iam
                    .delete_user_policy()
                    .user_name(user)
                    .policy_name(name)
                    .send()
                    .await))?;
            }
            Ok::<(), AwsError>(())
        },
        async {
            for g in groups.iter().flat_map(|g| g.groups()) {
                gone_ok(aws(c
                    .iam
                    .remove_user_from_group()
                    .user_name(user)
                    .group_name(g.group_name())
                    .send()
                    .await))?;
            }
            Ok::<(), AwsError>(())
        },
    );
    a?;
    b?;
    d?;
    e?;
    match gone_ok(aws(c.iam.delete_user().user_name(user).send().await)) {
        Ok(_) => Ok(()),
        // Something this engine never creates is attached (added by hand): clear it too.
        Err(e) if e.is("DeleteConflict") => {
            delete_extras(c, user).await?;
            gone_ok(aws(c.iam.delete_user().user_name(user).send().await)).map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Login profile, MFA devices, SSH keys, signing certificates, service-specific credentials.
async fn delete_extras(c: &Clients, user: &str) -> Result<(), AwsError> {
    gone_ok(aws(c
        .iam
        .delete_login_profile()
        .user_name(user)
        .send()
        .await))?;
    if let Some(mfa) = gone_ok(aws(c.iam.list_mfa_devices().user_name(user).send().await))? {
        for d in mfa.mfa_devices() {
            gone_ok(aws(c
                .iam
                .deactivate_mfa_device()
                .user_name(user)
                .serial_number(d.serial_number())
                .send()
                .await))?;
        }
    }
    if let Some(ssh) = gone_ok(aws(c
        .iam
        .list_ssh_public_keys()
        .user_name(user)
        .send()
        .await))?
    {
        for k in ssh.ssh_public_keys() {
            gone_ok(aws(c
                .iam
                .delete_ssh_public_key()
                .user_name(user)
                .ssh_public_key_id(k.ssh_public_key_id())
                .send()
                .await))?;
        }
    }
    if let Some(certs) = gone_ok(aws(c
        .iam
        .list_signing_certificates()
        .user_name(user)
        .send()
        .await))?
    {
        for cert in certs.certificates() {
            gone_ok(aws(c
                .iam
                .delete_signing_certificate()
                .user_name(user)
                .certificate_id(cert.certificate_id())
                .send()
                .await))?;
        }
    }
    if let Some(creds) = gone_ok(aws(c
        .iam
        .list_service_specific_credentials()
        .user_name(user)
        .send()
        .await))?
    {
        for cred in creds.service_specific_credentials() {
            gone_ok(aws(c
                .iam
                .delete_service_specific_credential()
                .user_name(user)
                .service_specific_credential_id(cred.service_specific_credential_id())
                .send()
                .await))?;
        }
    }
    Ok(())
}
