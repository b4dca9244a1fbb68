-- +goose Up
-- reset_requests are password reset requests waiting to be worked: every
-- request writes one row here, for a registered email or not, and the
-- account service's runner, after the answer, looks the email up and
-- mails a link to an account that has it. So the request itself does the
-- same work whatever the email (issue 22), and an answered request is not
-- lost: its row stays until a runner has worked it.
CREATE TABLE reset_requests (
    id           bigserial   PRIMARY KEY,
    email        text        NOT NULL,
    requested_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE reset_requests;
