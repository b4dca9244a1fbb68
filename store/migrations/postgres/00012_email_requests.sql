-- +goose Up
-- email_requests are requests for a mailed link that anyone may make
-- without signing in, waiting to be worked: a password reset
-- (reset_password) or a new verification link (verify_email). Every
-- request writes one row here, for a registered email or not, and the
-- account service's runner, after the answer, looks the email up and mails
-- a link to an account that has it. So the request itself does the same
-- work whatever the email (issue 22), and an answered request is not
-- lost: its row stays until a runner has worked it.
CREATE TABLE email_requests (
    id           bigserial   PRIMARY KEY,
    purpose      text        NOT NULL,
    email        text        NOT NULL,
    requested_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE email_requests;
