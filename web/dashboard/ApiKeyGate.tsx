import { useId, useState, type FormEvent } from "react";

/** Asks for the gateway API key once; the caller stores it in sessionStorage. */
export function ApiKeyGate({ onSubmit }: { onSubmit: (apiKey: string) => void }) {
  const [value, setValue] = useState("");
  const inputId = useId();
  const hintId = useId();

  const submit = (e: FormEvent<HTMLFormElement>): void => {
    e.preventDefault();
    const apiKey = value.trim();
    if (apiKey !== "") onSubmit(apiKey);
  };

  return (
    <main className="gate">
      <form className="gate-form card" data-testid="api-key-form" onSubmit={submit}>
        <h1 className="brand">
          RAKUDA <span className="brand-dot">·</span> Live operations
        </h1>
        <label htmlFor={inputId} className="gate-label">
          Gateway API key
        </label>
        <input
          id={inputId}
          data-testid="api-key-input"
          className="gate-input"
          type="password"
          name="apiKey"
          autoComplete="off"
          spellCheck={false}
          required
          autoFocus
          aria-describedby={hintId}
          value={value}
          onChange={(e) => setValue(e.target.value)}
        />
        <p id={hintId} className="gate-hint">
          Kept in this tab only (sessionStorage) and used to request a short-lived stream token.
        </p>
        <button type="submit" className="gate-submit">
          Connect
        </button>
      </form>
    </main>
  );
}
