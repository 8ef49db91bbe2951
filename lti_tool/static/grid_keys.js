/* Arrow keys move between gradebook cells (like a spreadsheet); Tab still
   leaves the table. Each cell is a link, so Enter opens its evidence. */
(function () {
  "use strict";
  var table = document.getElementById("gradebook");
  if (!table) { return; }
  table.addEventListener("keydown", function (event) {
    var cell = event.target.closest("td, th");
    if (!cell) { return; }
    var row = cell.parentElement;
    var col = Array.prototype.indexOf.call(row.children, cell);
    var target = null;
    if (event.key === "ArrowRight") { target = row.children[col + 1]; }
    else if (event.key === "ArrowLeft") { target = row.children[col - 1]; }
    else if (event.key === "ArrowDown" && row.nextElementSibling) { target = row.nextElementSibling.children[col]; }
    else if (event.key === "ArrowUp" && row.previousElementSibling) { target = row.previousElementSibling.children[col]; }
    if (!target) { return; }
    var link = target.querySelector("a");
    if (link) { link.focus(); event.preventDefault(); }
  });
}());
