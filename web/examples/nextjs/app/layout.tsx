// The root layout of a Next.js 14 app-router app wired for rakuda-realtime. It stays a server
// component: the client parts (providers, the status dot) are client components it renders,
// and ConnectionStatus works here because it sits inside <Providers>.
// In your app, import from "@rakuda/realtime/react" instead of the relative path.
import type { ReactNode } from "react";
import { ConnectionStatus } from "../../../src/react";
import { Providers } from "./providers";

export const metadata = {
  title: "RAKUDA",
};

const headerStyle = {
  display: "flex",
  alignItems: "center",
  justifyContent: "space-between",
  padding: "8px 16px",
  borderBottom: "1px solid #e5e7eb",
} as const;

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <Providers>
          <header style={headerStyle}>
            <a href="/">RAKUDA</a>
            <ConnectionStatus />
          </header>
          <main>{children}</main>
        </Providers>
      </body>
    </html>
  );
}
