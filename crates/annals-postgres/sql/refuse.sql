-- refuse(code, message, detail): raises an error with annals' own SQLSTATE. Plain SQL statements
-- (the one-stream append, append_stream.sql) call it inside a CASE to refuse an append: the error
-- aborts the statement, so nothing it did stays. Returns bigint only to fit in that CASE.
CREATE FUNCTION refuse(code text, message text, detail text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message, DETAIL = detail;
END
$$;
