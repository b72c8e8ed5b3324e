//! Where the auth token comes from: --token, SHOAL_TOKEN, --token-file, or a fresh random
//! one for clusters this process starts itself.

use rand::Rng;
use shoal_proto::auth::Token;

use crate::TokenArgs;

/// The token given on the command line, in the environment or in a file.
pub fn from_args(args: &TokenArgs) -> Result<Option<Token>, String> {
    if let Some(value) = &args.token {
        return Token::new(value).map(Some).map_err(|e| e.to_string());
    }
    if let Some(path) = &args.token_file {
        let value = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        return Token::new(&value)
            .map(Some)
            .map_err(|e| format!("token file {}: {e}", path.display()));
    }
    Ok(None)
}

/// The given token, or an error saying how to give one.
pub fn required(args: &TokenArgs) -> Result<Token, String> {
    from_args(args)?.ok_or_else(|| {
        "no auth token: every cluster needs one; pass --token, --token-file or SHOAL_TOKEN \
         (`shoal local` prints the token of the cluster it starts)"
            .to_string()
    })
}

/// A fresh random token (32 hex digits).
pub fn generate() -> Token {
    let mut rng = rand::rng();
    let value: String = (0..16)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect();
    Token::new(&value).expect("hex digits form a valid token")
}
