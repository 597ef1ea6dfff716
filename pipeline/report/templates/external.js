// External validation pages are static tables and charts: nothing runs.
"use strict";
