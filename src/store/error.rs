//! Which store errors can clear. A caller retries only a [`ErrorClass::Transient`]
//! error; a [`ErrorClass::Content`] error was caused by what was written (so
//! the processor isolates the offending ballots instead of blocking the
//! batch); a [`ErrorClass::Permanent`] one stops the stage with its message.

use postgres::error::SqlState;
use rusqlite::ErrorCode;

use super::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Can clear by itself: connection lost, lock busy, server shutting
    /// down or restarting, serialization failure, disk full.
    Transient,
    /// Caused by the data written: the same data fails again, other data
    /// would not (text a store cannot keep, an out-of-range value, a
    /// constraint the data breaks).
    Content,
    /// Neither: a wrong URL, a missing or read-only database, a bug.
    Permanent,
}

impl StoreError {
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Postgres(e) => postgres_class(e),
            StoreError::Sqlite(e) => sqlite_class(e),
            StoreError::NulInText { .. } | StoreError::OutOfRange { .. } => ErrorClass::Content,
            StoreError::UnsupportedUrl(_)
            | StoreError::SqliteValue(_)
            | StoreError::UnknownElection(_)
            | StoreError::BadCheckpoint(_)
            | StoreError::BadShown(_)
            | StoreError::ReadOnly
            | StoreError::UnknownReason(_)
            | StoreError::EngineMoved { .. } => ErrorClass::Permanent,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }
}

fn postgres_class(e: &postgres::Error) -> ErrorClass {
    let Some(code) = e.code() else {
        // No SQLSTATE: the error is the client's. A value it could not
        // convert is a bug; anything else (refused, reset or timed-out
        // connections, a closed session) is the connection's.
        let conversion = std::error::Error::source(e).is_some_and(|s| {
            s.is::<postgres::types::WrongType>() || s.is::<postgres::types::WasNull>()
        });
        return if conversion {
            ErrorClass::Permanent
        } else {
            ErrorClass::Transient
        };
    };
    let transient = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::OBJECT_IN_USE,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::QUERY_CANCELED,
        SqlState::IDLE_SESSION_TIMEOUT,
        SqlState::READ_ONLY_SQL_TRANSACTION, // a standby while it is promoted
        SqlState::IO_ERROR,
    ];
    let class = &code.code()[..2];
    if transient.contains(code)
        // connection exception, transaction rollback, insufficient resources
        || matches!(class, "08" | "40" | "53")
    {
        ErrorClass::Transient
    } else if matches!(class, "22" | "23" | "54") {
        // data exception, integrity constraint violation, program limit
        // exceeded (a value too large for an index row)
        ErrorClass::Content
    } else {
        ErrorClass::Permanent
    }
}

fn sqlite_class(e: &rusqlite::Error) -> ErrorClass {
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        // Conversions and API misuse: the code's, not the data's or the disk's.
        return ErrorClass::Permanent;
    };
    match f.code {
        ErrorCode::DatabaseBusy
        | ErrorCode::DatabaseLocked
        | ErrorCode::SchemaChanged
        | ErrorCode::OperationInterrupted
        | ErrorCode::DiskFull
        | ErrorCode::SystemIoFailure
        | ErrorCode::OutOfMemory => ErrorClass::Transient,
        ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch => {
            ErrorClass::Content
        }
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: ErrorCode) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error {
                code,
                extended_code: 0,
            },
            None,
        ))
    }

    #[test]
    fn only_errors_that_can_clear_are_transient() {
        assert_eq!(
            sqlite(ErrorCode::DatabaseBusy).class(),
            ErrorClass::Transient
        );
        assert_eq!(
            sqlite(ErrorCode::ConstraintViolation).class(),
            ErrorClass::Content
        );
        assert_eq!(sqlite(ErrorCode::ReadOnly).class(), ErrorClass::Permanent);
        assert_eq!(
            StoreError::NulInText { what: "x".into() }.class(),
            ErrorClass::Content
        );
        assert_eq!(
            StoreError::UnsupportedUrl("x".into()).class(),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn a_lost_postgres_connection_is_transient() {
        // Nothing listens on port 1: the connection is refused.
        let Err(e) = postgres::Config::new()
            .host("127.0.0.1")
            .port(1)
            .user("nobody")
            .connect(postgres::NoTls)
        else {
            panic!("nothing listens on port 1");
        };
        assert_eq!(StoreError::Postgres(e).class(), ErrorClass::Transient);
    }
}
