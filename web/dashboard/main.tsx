import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { App } from "./App";
import { readBootConfig } from "./config";
import "./styles.css";

// Read (and strip ?apiKey= from) the URL before anything renders.
const config = readBootConfig();

const queryClient = new QueryClient({
  defaultOptions: { queries: { refetchOnWindowFocus: false, staleTime: 30_000 } },
});

const container = document.getElementById("root");
if (container === null) throw new Error("dashboard: #root is missing from index.html");

createRoot(container).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <App config={config} />
    </QueryClientProvider>
  </StrictMode>,
);
